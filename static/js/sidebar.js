// The sidebar: conversations most recent first, paginated; rename, archive and delete in place.
// Pins, folders, date groups and bulk actions come from folders.js (the ``organiser``).

import { groupHeader, groupLabel } from "./folders.js";

function item(conversation, currentId, archivedView) {
  const li = document.createElement("li");
  li.className = "conversation-item" + (conversation.id === currentId ? " current" : "");
  li.dataset.conversationItem = conversation.id;
  li.innerHTML = `<a data-conversation-link data-testid="conversation-link"></a>
    <span class="conversation-actions">
      <button type="button" data-rename data-testid="rename">Rename</button>
      <button type="button" data-archive data-testid="archive"></button>
      <button type="button" data-delete data-testid="delete">Delete</button>
    </span>`;
  const link = li.querySelector("a");
  link.href = `/c/${conversation.id}/`;
  link.textContent = conversation.title;
  li.querySelector("[data-archive]").textContent = archivedView ? "Unarchive" : "Archive";
  return li;
}

export class Sidebar {
  constructor({ root, api, getCurrentId, onDeleted, onError }) {
    this.root = root;
    this.api = api;
    this.getCurrentId = getCurrentId;
    this.onDeleted = onDeleted;
    this.onError = onError;
    this.list = root.querySelector("[data-conversation-list]");
    this.more = root.querySelector("[data-load-more]");
    this.archived = false;
    this.page = 1;
    this.organiser = null; // set by the page: folders.js's Organiser
    this.more.addEventListener("click", () => this.load(this.page + 1));
    root.querySelectorAll("[data-archived-tab]").forEach((tab) =>
      tab.addEventListener("click", () => {
        this.archived = tab.dataset.archivedTab === "1";
        root.querySelectorAll("[data-archived-tab]").forEach((t) =>
          t.setAttribute("aria-pressed", String(t === tab)));
        this.load(1);
      }));
    this.list.addEventListener("click", (event) => this.onClick(event));
    this.setupDrawer();
  }

  // On a phone the list is a drawer over the conversation: the ☰ and × buttons open and close it,
  // and so do Escape and a tap beside it; focus moves into it and back to the ☰ button.
  setupDrawer() {
    const openButton = this.root.querySelector(".sidebar-open[data-sidebar-toggle]");
    const sidebar = this.root.querySelector("[data-sidebar]");
    const setOpen = (open) => {
      if (open === this.root.classList.contains("drawer-open")) return;
      this.root.classList.toggle("drawer-open", open);
      openButton.setAttribute("aria-expanded", String(open));
      if (open) sidebar.querySelector("[data-new-chat]").focus();
      else if (sidebar.contains(document.activeElement)) openButton.focus();
    };
    this.root.querySelectorAll("[data-sidebar-toggle]").forEach((button) =>
      button.addEventListener("click", () => setOpen(!this.root.classList.contains("drawer-open"))));
    sidebar.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !event.defaultPrevented) setOpen(false);
    });
    this.root.querySelector(".conversation").addEventListener("click", (event) => {
      if (!event.target.closest("[data-sidebar-toggle]")) setOpen(false);
    });
  }

  async load(page) {
    // Live updates (a new conversation, a title) that arrive while the first page is on its way
    // are newer than it: kept here and applied over it, so the page never undoes them.
    const live = new Map();
    if (page === 1) this.live = live;
    try {
      const folder = this.organiser ? this.organiser.query() : "";
      const data = await this.api.get(`conversations/?page=${page}&archived=${this.archived ? 1 : 0}${folder}`);
      if (this.live === live) this.live = null; // a newer load keeps its own
      if (page === 1) this.list.replaceChildren();
      data.items.forEach((c) => this.place(c, { append: true }));
      if (page === 1 && !data.items.length && !live.size) {
        this.list.innerHTML = '<li class="conversation-empty">No conversations here.</li>';
      }
      for (const update of live.values()) {
        if (update.conversation) this.upsert({ ...update.conversation, ...(update.title ? { title: update.title } : {}) });
        else this.setTitle(update.id, update.title);
      }
      this.page = page;
      this.more.hidden = !data.has_more;
    } catch (error) {
      this.onError(`Could not load the conversation list: ${error.message}`);
    } finally {
      if (this.live === live) this.live = null;
    }
  }

  remember(id, change) {
    if (this.live) this.live.set(id, { id, ...this.live.get(id), ...change });
  }

  build(conversation) {
    const li = item(conversation, this.getCurrentId(), this.archived);
    this.organiser?.decorate(li, conversation);
    return li;
  }

  // Put a conversation under its date group's header: at the end of the list while a page is
  // read (the server's order), or first in its group for a live update.
  place(conversation, { append }) {
    const label = groupLabel(conversation);
    const fresh = this.build(conversation);
    if (append) {
      const headers = this.list.querySelectorAll("[data-group]");
      if (headers[headers.length - 1]?.dataset.group !== label) this.list.append(groupHeader(label));
      this.list.append(fresh);
      return;
    }
    let header = this.list.querySelector(`[data-group="${CSS.escape(label)}"]`);
    if (!header) {
      header = groupHeader(label);
      const pinned = this.list.querySelector('[data-group="Pinned"]');
      if (label === "Pinned" || !pinned) this.list.prepend(header);
      else {
        const items = [...this.list.querySelectorAll("[data-group]")];
        const next = items[items.indexOf(pinned) + 1];
        if (next) next.before(header);
        else this.list.append(header);
      }
    }
    header.after(fresh);
  }

  // Drop group headers left without a conversation under them.
  tidyGroups() {
    this.list.querySelectorAll("[data-group]").forEach((header) => {
      const next = header.nextElementSibling;
      if (!next || next.matches("[data-group]")) header.remove();
    });
  }

  // A conversation changed (new message, title, rename): put it first, as the server orders.
  upsert(conversation) {
    this.remember(conversation.id, { conversation, title: null });
    if (conversation.archived !== this.archived) return;
    const folderId = this.organiser?.folderId;
    this.list.querySelector(".conversation-empty")?.remove();
    this.list.querySelector(`[data-conversation-item="${conversation.id}"]`)?.remove();
    if (!folderId || conversation.folder_id === folderId) this.place(conversation, { append: false });
    this.tidyGroups();
  }

  setTitle(id, title) {
    this.remember(id, { title });
    const link = this.list.querySelector(`[data-conversation-item="${id}"] [data-conversation-link]`);
    if (link) link.textContent = title;
  }

  markCurrent(id) {
    this.list.querySelectorAll("[data-conversation-item]").forEach((li) =>
      li.classList.toggle("current", li.dataset.conversationItem === id));
  }

  async onClick(event) {
    const button = event.target.closest("button");
    if (!button) return;
    const li = button.closest("[data-conversation-item]");
    const id = li.dataset.conversationItem;
    if (button.matches("[data-rename]")) this.rename(li, id);
    else if (button.matches("[data-archive]")) this.archive(li, id);
    else if (button.matches("[data-delete]")) this.remove(li, id, button);
  }

  rename(li, id) {
    const link = li.querySelector("[data-conversation-link]");
    const input = document.createElement("input");
    input.className = "rename-input";
    input.dataset.testid = "rename-input";
    input.setAttribute("aria-label", "New title");
    input.value = link.textContent;
    link.hidden = true;
    li.prepend(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      input.remove();
      link.hidden = false;
      if (!save || !input.value.trim() || input.value === link.textContent) return;
      try {
        const data = await this.api.post(`conversations/${id}/rename`, { title: input.value });
        link.textContent = data.conversation.title;
        this.root.dispatchEvent(new CustomEvent("conversation-renamed", { detail: data.conversation }));
      } catch (error) {
        this.onError(`Could not rename: ${error.message}`);
      }
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") finish(true);
      if (event.key === "Escape") {
        event.preventDefault(); // the rename's Escape: not a Stop, and the drawer stays open
        finish(false);
      }
      if (event.key === "Enter" || event.key === "Escape") link.focus();
    });
    input.addEventListener("blur", () => finish(true));
  }

  async archive(li, id) {
    try {
      await this.api.post(`conversations/${id}/archive`, { archived: !this.archived });
      li.remove();
      this.tidyGroups();
    } catch (error) {
      this.onError(`Could not archive: ${error.message}`);
    }
  }

  async remove(li, id, button) {
    if (button.dataset.confirm !== "1") {
      button.dataset.confirm = "1"; // a second click confirms: no modal dialog
      button.textContent = "Confirm delete";
      button.dataset.testid = "confirm-delete";
      setTimeout(() => {
        if (button.isConnected) {
          button.dataset.confirm = "";
          button.textContent = "Delete";
          button.dataset.testid = "delete";
        }
      }, 4000);
      return;
    }
    try {
      await this.api.post(`conversations/${id}/delete`, {});
      li.remove();
      this.tidyGroups();
      this.onDeleted(id);
    } catch (error) {
      this.onError(`Could not delete: ${error.message}`);
    }
  }
}
