// Search over the user's conversations from the top of the sidebar: results replace the list
// while there is a query; Ctrl/Cmd+K (or "/" outside a text field) jumps to the box. A result
// opens its conversation at the matching message (#m=<id>), which revealMessage shows.

const DEBOUNCE_MS = 150;

function snippetNode(segments) {
  const p = document.createElement("p");
  p.className = "search-snippet";
  for (const segment of segments) {
    // Text nodes only: the server sends plain text and which parts matched, never markup.
    if (segment.hit) {
      const mark = document.createElement("mark");
      mark.textContent = segment.text;
      p.append(mark);
    } else {
      p.append(document.createTextNode(segment.text));
    }
  }
  return p;
}

function resultNode(result) {
  const li = document.createElement("li");
  li.className = "search-result";
  const link = document.createElement("a");
  link.dataset.testid = "search-result";
  link.dataset.conversationId = result.conversation_id;
  link.href = `/c/${result.conversation_id}/` + (result.message_id ? `#m=${result.message_id}` : "");
  const title = document.createElement("strong");
  title.className = "search-title";
  title.textContent = result.title;
  link.append(title);
  if (result.archived) {
    const tag = document.createElement("span");
    tag.className = "search-tag";
    tag.textContent = "archived";
    link.append(" ", tag);
  }
  link.append(snippetNode(result.snippet));
  li.append(link);
  return li;
}

export class SearchBox {
  constructor({ root, api, onError }) {
    this.root = root;
    this.api = api;
    this.onError = onError;
    this.input = root.querySelector("[data-search-input]");
    this.results = root.querySelector("[data-search-results]");
    this.hideWhileSearching = root.querySelectorAll("[data-hide-while-searching]");
    this.timer = null;
    this.asked = 0; // the latest request's number: answers to older ones are dropped
    this.input.addEventListener("input", () => this.schedule());
    this.input.addEventListener("keydown", (event) => this.onKey(event));
    root.querySelector("[data-search]").addEventListener("submit", (event) => {
      event.preventDefault();
      this.open(0);
    });
    this.results.addEventListener("keydown", (event) => this.onKey(event));
    this.results.addEventListener("click", (event) => {
      const link = event.target.closest("a");
      // The same result again: no hashchange, so ask for the message to be shown once more.
      if (link && link.pathname === location.pathname && link.hash === location.hash) {
        window.dispatchEvent(new HashChangeEvent("hashchange"));
      }
    });
    document.addEventListener("keydown", (event) => this.shortcut(event));
  }

  shortcut(event) {
    const typing = event.target.closest?.("input, textarea, select, [contenteditable]");
    const k = (event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "k";
    if (!k && !(event.key === "/" && !typing && !event.ctrlKey && !event.metaKey)) return;
    event.preventDefault();
    const opener = this.root.querySelector(".sidebar-open[data-sidebar-toggle]");
    if (opener && opener.offsetParent !== null && !this.root.classList.contains("drawer-open")) opener.click();
    this.input.focus();
    this.input.select();
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), DEBOUNCE_MS);
  }

  async run() {
    const query = this.input.value;
    if (!query.trim()) {
      this.show(false);
      return;
    }
    const asked = ++this.asked;
    try {
      const data = await this.api.get(`search?q=${encodeURIComponent(query)}`);
      if (asked !== this.asked) return;
      this.results.replaceChildren(...data.results.map(resultNode));
      if (!data.results.length) {
        const empty = document.createElement("li");
        empty.className = "conversation-empty";
        empty.dataset.testid = "search-empty";
        empty.textContent = "No conversation matches.";
        this.results.append(empty);
      }
      this.show(true);
    } catch (error) {
      if (asked === this.asked) this.onError(`Could not search: ${error.message}`);
    }
  }

  show(searching) {
    this.results.hidden = !searching;
    this.hideWhileSearching.forEach((el) => el.classList.toggle("search-hidden", searching));
  }

  links() {
    return [...this.results.querySelectorAll("[data-testid=search-result]")];
  }

  open(index) {
    const link = this.links()[index];
    if (link) link.click();
  }

  // Down/Up move through the results, Enter opens one (a link's own Enter), Escape clears.
  onKey(event) {
    const links = this.links();
    const at = links.indexOf(document.activeElement);
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!links.length) return;
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      const next = at + step;
      if (next < 0) this.input.focus();
      else links[Math.min(next, links.length - 1)].focus();
    } else if (event.key === "Escape" && (this.input.value || !this.results.hidden)) {
      event.preventDefault(); // clearing the search is not a Stop
      this.input.value = "";
      this.show(false);
      this.input.focus();
    }
  }
}

// Show message ``id`` of the loaded conversation: switch to its branch if it is on another one
// (``selectBranch`` keeps that choice), scroll it into view and mark it for a moment.
export function revealMessage({ id, tree, view, list, selectBranch }) {
  if (!id || !tree.byId.has(id)) return false;
  if (!tree.path().some((m) => m.id === id)) {
    tree.leafId = tree.deepest(id);
    view.renderAll();
    selectBranch(tree.leafId);
  }
  const article = list.querySelector(`[data-message-id="${CSS.escape(id)}"]`);
  if (!article) return false;
  list.querySelectorAll("[data-search-target]").forEach((el) => {
    el.classList.remove("search-target");
    delete el.dataset.searchTarget;
  });
  article.classList.add("search-target");
  article.dataset.searchTarget = "1";
  article.scrollIntoView({ block: "center" });
  return true;
}

// The message id a search result asked for, from "#m=<id>".
export function targetFromHash() {
  const match = /^#m=([0-9a-f-]{36})$/.exec(location.hash);
  return match ? match[1] : null;
}
