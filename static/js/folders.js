// Organising the sidebar: folders (filter the list, move a conversation into one), pins (kept at
// the top), date groups (Today, Yesterday, Previous 7 days, then months) and selecting several
// conversations to archive or delete them at once with one confirmation.

const DAY_MS = 24 * 60 * 60 * 1000;

// The sidebar group of a conversation, by its last activity in the browser's time zone.
export function groupLabel(conversation, now = new Date()) {
  if (conversation.pinned) return "Pinned";
  const updated = new Date(conversation.updated);
  const startOfToday = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const days = Math.floor((startOfToday - new Date(updated.getFullYear(), updated.getMonth(), updated.getDate())) / DAY_MS);
  if (days <= 0) return "Today";
  if (days === 1) return "Yesterday";
  if (days <= 7) return "Previous 7 days";
  return updated.toLocaleDateString(undefined, { month: "long", year: "numeric" });
}

export function groupHeader(label) {
  const li = document.createElement("li");
  li.className = "conversation-group";
  li.dataset.group = label;
  li.dataset.testid = "conversation-group";
  li.setAttribute("role", "presentation");
  li.textContent = label;
  return li;
}

export class Organiser {
  constructor({ root, api, onError, reload, onDeleted }) {
    this.root = root;
    this.api = api;
    this.onError = onError;
    this.reload = reload; // () => the sidebar's first page again
    this.onDeleted = onDeleted; // (ids) => the page leaves a deleted conversation
    this.folders = [];
    this.folderId = null; // the folder the list shows (null: all)
    this.selecting = false;
    this.bar = root.querySelector("[data-folder-bar]");
    this.bulkBar = root.querySelector("[data-bulk-bar]");
    this.confirm = root.querySelector("[data-bulk-confirm]");
    this.list = root.querySelector("[data-conversation-list]");
    this.bar.addEventListener("click", (event) => this.onFolderClick(event));
    root.querySelector("[data-new-folder]").addEventListener("click", () => this.newFolder());
    root.querySelector("[data-select-mode]").addEventListener("click", () => this.setSelecting(!this.selecting));
    this.bulkBar.addEventListener("click", (event) => this.onBulkClick(event));
    this.list.addEventListener("change", (event) => this.onItemChange(event));
    this.list.addEventListener("click", (event) => this.onItemClick(event));
  }

  async loadFolders() {
    try {
      this.folders = (await this.api.get("folders/")).folders;
    } catch (error) {
      this.onError(`Could not load the folders: ${error.message}`);
    }
    this.renderFolders();
  }

  renderFolders() {
    const list = this.bar.querySelector("[data-folder-list]");
    const chip = (id, name) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.folderFilter = id || "";
      button.dataset.testid = "folder";
      button.setAttribute("aria-pressed", String((id || null) === this.folderId));
      button.textContent = name;
      li.append(button);
      if (id) {
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "folder-delete";
        remove.dataset.folderDelete = id;
        remove.dataset.testid = "folder-delete";
        remove.setAttribute("aria-label", `Delete the folder ${name} (its conversations stay)`);
        remove.textContent = "×";
        li.append(remove);
      }
      return li;
    };
    list.replaceChildren(chip(null, "All"), ...this.folders.map((f) => chip(f.id, f.name)));
    this.list.querySelectorAll("select[data-move]").forEach((select) => this.fillMoveSelect(select));
  }

  fillMoveSelect(select) {
    const current = select.dataset.folderId || "";
    const options = [new Option("No folder", ""), ...this.folders.map((f) => new Option(f.name, f.id))];
    select.replaceChildren(new Option("Move to…", "__", true, false), ...options);
    select.options[0].disabled = true;
    select.value = "__";
    select.dataset.folderId = current;
  }

  // The sidebar's query string for the folder shown.
  query() {
    return this.folderId ? `&folder=${this.folderId}` : "";
  }

  // Pin, move and select controls of one sidebar item.
  decorate(li, conversation) {
    const actions = li.querySelector(".conversation-actions");
    const pin = document.createElement("button");
    pin.type = "button";
    pin.dataset.pin = conversation.pinned ? "0" : "1";
    pin.dataset.testid = "pin";
    pin.textContent = conversation.pinned ? "Unpin" : "Pin";
    const move = document.createElement("select");
    move.dataset.move = "";
    move.dataset.testid = "move";
    move.dataset.folderId = conversation.folder_id || "";
    move.setAttribute("aria-label", "Move to a folder");
    this.fillMoveSelect(move);
    actions.prepend(pin, move);
    const check = document.createElement("input");
    check.type = "checkbox";
    check.className = "select-box";
    check.dataset.select = conversation.id;
    check.dataset.testid = "select";
    check.setAttribute("aria-label", `Select ${conversation.title}`);
    li.prepend(check);
    if (conversation.folder_id) {
      const folder = this.folders.find((f) => f.id === conversation.folder_id);
      if (folder) {
        li.dataset.folder = folder.name;
        li.querySelector("[data-conversation-link]").dataset.folder = folder.name;
      }
    }
  }

  async onFolderClick(event) {
    const filter = event.target.closest("[data-folder-filter]");
    const remove = event.target.closest("[data-folder-delete]");
    if (filter) {
      this.folderId = filter.dataset.folderFilter || null;
      this.renderFolders();
      this.reload();
    } else if (remove) {
      if (remove.dataset.confirm !== "1") {
        remove.dataset.confirm = "1"; // a second click confirms, as for one conversation
        remove.textContent = "Delete?";
        setTimeout(() => {
          if (remove.isConnected) {
            remove.dataset.confirm = "";
            remove.textContent = "×";
          }
        }, 4000);
        return;
      }
      try {
        await this.api.post(`folders/${remove.dataset.folderDelete}/delete`, {});
        if (this.folderId === remove.dataset.folderDelete) this.folderId = null;
        await this.loadFolders();
        this.reload();
      } catch (error) {
        this.onError(`Could not delete the folder: ${error.message}`);
      }
    }
  }

  newFolder() {
    const form = this.bar.querySelector("[data-new-folder-form]");
    form.hidden = false;
    const input = form.querySelector("input");
    input.value = "";
    input.focus();
    const finish = async (save) => {
      form.hidden = true;
      form.onsubmit = null;
      input.onkeydown = null;
      if (!save || !input.value.trim()) return;
      try {
        const data = await this.api.post("folders/", { name: input.value });
        this.folders.push(data.folder);
        this.folders.sort((a, b) => a.name.localeCompare(b.name));
        this.renderFolders();
      } catch (error) {
        this.onError(`Could not create the folder: ${error.message}`);
      }
    };
    form.onsubmit = (event) => {
      event.preventDefault();
      finish(true);
    };
    input.onkeydown = (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        finish(false);
      }
    };
  }

  async onItemChange(event) {
    const move = event.target.closest("select[data-move]");
    if (move) {
      const id = move.closest("[data-conversation-item]").dataset.conversationItem;
      try {
        await this.api.post(`conversations/${id}/folder`, { folder_id: move.value || null });
        this.reload();
      } catch (error) {
        this.onError(`Could not move: ${error.message}`);
      }
    } else if (event.target.matches("[data-select]")) {
      this.showBulkCount();
    }
  }

  async onItemClick(event) {
    const link = event.target.closest("[data-conversation-link]");
    if (this.selecting && link) { // while selecting, a title (de)selects instead of opening
      event.preventDefault();
      const box = link.closest("[data-conversation-item]").querySelector("[data-select]");
      box.checked = !box.checked;
      this.showBulkCount();
      return;
    }
    const pin = event.target.closest("button[data-pin]");
    if (!pin) return;
    const id = pin.closest("[data-conversation-item]").dataset.conversationItem;
    try {
      await this.api.post(`conversations/${id}/pin`, { pinned: pin.dataset.pin === "1" });
      this.reload();
    } catch (error) {
      this.onError(`Could not pin: ${error.message}`);
    }
  }

  setSelecting(selecting) {
    this.selecting = selecting;
    this.root.classList.toggle("selecting", selecting);
    this.root.querySelector("[data-select-mode]").setAttribute("aria-pressed", String(selecting));
    this.bulkBar.hidden = !selecting;
    if (!selecting) this.list.querySelectorAll("[data-select]").forEach((box) => { box.checked = false; });
    this.showBulkCount();
  }

  selected() {
    return [...this.list.querySelectorAll("[data-select]:checked")].map((box) => box.dataset.select);
  }

  showBulkCount() {
    const count = this.selected().length;
    this.bulkBar.querySelector("[data-bulk-count]").textContent = `${count} selected`;
    this.bulkBar.querySelectorAll("[data-bulk]").forEach((button) => { button.disabled = count === 0; });
  }

  async onBulkClick(event) {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.matches("[data-bulk-cancel]")) {
      this.setSelecting(false);
      return;
    }
    const action = button.dataset.bulk;
    const ids = this.selected();
    if (!action || !ids.length) return;
    const archivedView = this.root.querySelector("[data-archived-tab='1']").getAttribute("aria-pressed") === "true";
    const verb = action === "delete" ? "Delete" : archivedView ? "Unarchive" : "Archive";
    const ok = await this.ask(
      `${verb} ${ids.length} conversation${ids.length === 1 ? "" : "s"}?` +
        (action === "delete" ? " This cannot be undone." : ""),
      verb,
    );
    if (!ok) return;
    try {
      const bulkAction = action === "delete" ? "delete" : archivedView ? "unarchive" : "archive";
      await this.api.post("conversations/bulk", { action: bulkAction, ids });
      this.setSelecting(false);
      if (bulkAction === "delete") this.onDeleted(ids);
      this.reload();
    } catch (error) {
      this.onError(`Could not ${verb.toLowerCase()}: ${error.message}`);
    }
  }

  // The one confirmation of a bulk action: a modal dialog, resolved true by its confirm button.
  ask(text, verb) {
    this.confirm.querySelector("[data-bulk-confirm-text]").textContent = text;
    const yes = this.confirm.querySelector("[data-bulk-confirm-yes]");
    yes.textContent = verb;
    this.confirm.returnValue = ""; // Escape closes it without a value
    this.confirm.showModal();
    return new Promise((resolve) => {
      this.confirm.addEventListener("close", () => resolve(this.confirm.returnValue === "yes"), { once: true });
    });
  }
}
