// The message list: the tree of messages (branches), the path shown, and each message's element.
// Streaming text is applied here: deltas in seq order, a gap asks the owner to resume.

import { renderAttachments } from "./attachments.js";
import { copyText, renderMarkdown, renderPlain } from "./render.js";
import { paintUsage } from "./usage.js";

const STATUS_LABELS = {
  streaming: "writing…",
  stopped: "stopped",
  interrupted: "interrupted",
  filtered: "filtered",
  error: "failed",
};

export class MessageTree {
  constructor() {
    this.byId = new Map();
    this.leafId = null;
  }

  reset(messages, leafId) {
    this.byId = new Map(messages.map((m) => [m.id, m]));
    this.leafId = leafId;
  }

  add(message) {
    const known = this.byId.get(message.id);
    if (known) return known;
    this.byId.set(message.id, message);
    return message;
  }

  children(parentId) {
    return [...this.byId.values()]
      .filter((m) => m.parent_id === parentId)
      .sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : 0));
  }

  // The newest leaf below a message: where a sibling switch lands.
  deepest(id) {
    let current = this.byId.get(id);
    for (;;) {
      const kids = this.children(current.id);
      if (!kids.length) return current.id;
      current = kids[kids.length - 1];
    }
  }

  path() {
    const path = [];
    let current = this.byId.get(this.leafId);
    while (current) {
      path.unshift(current);
      current = this.byId.get(current.parent_id);
    }
    return path;
  }

  streaming() {
    return [...this.byId.values()].filter((m) => m.status === "streaming");
  }
}

export class MessageView {
  constructor({ list, announcer, tree, actions }) {
    this.list = list;
    this.announcer = announcer;
    this.tree = tree;
    this.actions = actions; // {regenerate(id), edit(id, text), selectBranch(leafId)}
    this.elements = new Map();
    this.pending = new Set();
    this.firstTextSeen = new Set();
    this.frame = 0;
    list.addEventListener("click", (event) => this.onClick(event));
  }

  renderAll() {
    const keep = this.list.querySelector("[data-empty-state]");
    this.elements.clear();
    const path = this.tree.path();
    const nodes = path.map((message) => this.build(message));
    this.list.replaceChildren(...(keep ? [keep] : []), ...nodes);
    if (keep) keep.hidden = path.length > 0;
    this.list.scrollTop = this.list.scrollHeight;
  }

  build(message) {
    const article = document.createElement("article");
    article.className = `message message-${message.role}`;
    article.dataset.messageId = message.id;
    article.dataset.role = message.role;
    article.dataset.testid = "message";
    article.innerHTML = `
      <div class="message-meta"><span class="message-author"></span><span class="message-status" data-testid="message-status"></span><span class="message-usage" data-testid="message-usage" hidden></span></div>
      <details class="message-reasoning" data-testid="message-reasoning" hidden>
        <summary>Reasoning</summary>
        <div class="message-reasoning-text markdown" data-testid="message-reasoning-text"></div>
      </details>
      <div class="message-body" data-testid="message-body"></div>
      <div class="message-attachments" data-message-attachments data-testid="message-attachments" hidden></div>
      <p class="message-notice" data-testid="message-notice" hidden></p>
      <p class="message-retry" data-testid="message-retry" role="status" hidden></p>
      <p class="message-error" data-testid="message-error" role="alert" hidden></p>
      <div class="message-actions">
        <span class="siblings" data-siblings hidden>
          <button type="button" data-sibling="-1" aria-label="Previous version" data-testid="sibling-prev">‹</button>
          <span data-sibling-label data-testid="sibling-label"></span>
          <button type="button" data-sibling="1" aria-label="Next version" data-testid="sibling-next">›</button>
        </span>
        <button type="button" data-copy-message data-testid="copy-message">Copy</button>
      </div>`;
    const actions = article.querySelector(".message-actions");
    if (message.role === "assistant") {
      actions.insertAdjacentHTML("beforeend", '<button type="button" data-regenerate data-testid="regenerate">Regenerate</button>');
    } else {
      actions.insertAdjacentHTML("beforeend", '<button type="button" data-edit data-testid="edit">Edit</button>');
    }
    article.querySelector(".message-author").textContent =
      message.role === "user" ? "You" : message.model_key || "Assistant";
    const siblings = this.tree.children(message.parent_id);
    if (siblings.length > 1) {
      const index = siblings.findIndex((m) => m.id === message.id);
      article.querySelector("[data-siblings]").hidden = false;
      article.querySelector("[data-sibling-label]").textContent = `${index + 1}/${siblings.length}`;
    }
    this.elements.set(message.id, article);
    this.paint(message);
    return article;
  }

  // Redraw one message's text, status and error (batched to one paint per animation frame).
  update(message) {
    this.pending.add(message.id);
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      const ids = [...this.pending];
      this.pending.clear();
      const follow = this.nearEnd(); // measured before the text grows
      ids.forEach((id) => {
        const current = this.tree.byId.get(id);
        if (current) this.paint(current);
      });
      if (follow) this.list.scrollTop = this.list.scrollHeight;
    });
  }

  paint(message) {
    const article = this.elements.get(message.id);
    if (!article) return;
    article.dataset.status = message.status;
    const body = article.querySelector(".message-body");
    if (message.role === "assistant") {
      // The model's reasoning summary: collapsed above the answer (open it to read).
      const reasoning = article.querySelector(".message-reasoning");
      reasoning.hidden = !message.reasoning;
      if (message.reasoning && reasoning.shownText !== message.reasoning) {
        reasoning.shownText = message.reasoning;
        renderMarkdown(reasoning.querySelector(".message-reasoning-text"), message.reasoning, {
          streaming: message.status === "streaming",
        });
      }
      body.classList.add("markdown");
      renderMarkdown(body, message.content, { streaming: message.status === "streaming" });
      if (message.content && !this.firstTextSeen.has(message.id) && message.status === "streaming") {
        this.firstTextSeen.add(message.id);
        performance.mark("lapis-first-text", { detail: { message_id: message.id } });
      }
    } else {
      renderPlain(body, message.content);
    }
    article.querySelector(".message-status").textContent = STATUS_LABELS[message.status] || "";
    paintUsage(article.querySelector(".message-usage"), message.role === "assistant" ? message.usage : null);
    const figures = article.querySelector("[data-message-attachments]");
    const shown = (message.attachments || []).map((a) => a.id).join(",");
    if (figures.dataset.shown !== shown) { // images are redrawn only when they change
      figures.dataset.shown = shown;
      renderAttachments(figures, message.attachments);
    }
    const notice = article.querySelector(".message-notice");
    notice.hidden = !message.notice;
    notice.textContent = message.notice || "";
    const retry = article.querySelector(".message-retry");
    const waiting = message.status === "streaming" && !message.content && message.retrying;
    retry.hidden = !waiting; // shown until the first text (or the end) arrives
    retry.textContent = waiting ? message.retrying : "";
    const error = article.querySelector(".message-error");
    error.hidden = !message.error;
    if (message.error) error.textContent = describeError(message.error);
    const busy = message.status === "streaming";
    article.querySelectorAll("[data-regenerate], [data-edit]").forEach((b) => {
      b.disabled = busy;
    });
  }

  // Whether the reader is at the end: then new text keeps it there; someone who scrolled up to
  // read is left where they are.
  nearEnd() {
    return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 160;
  }

  announce(text) {
    this.announcer.textContent = text;
  }

  onClick(event) {
    const button = event.target.closest("button");
    if (!button) return;
    const article = button.closest("[data-message-id]");
    if (button.matches("[data-copy-code]")) {
      copyText(button.parentElement.querySelector("code").textContent, button);
      return;
    }
    if (!article) return;
    const message = this.tree.byId.get(article.dataset.messageId);
    if (!message) return;
    if (button.matches("[data-copy-message]")) copyText(message.content, button);
    else if (button.matches("[data-regenerate]")) this.actions.regenerate(message.id);
    else if (button.matches("[data-edit]")) this.startEdit(article, message);
    else if (button.matches("[data-sibling]")) this.switchSibling(message, Number(button.dataset.sibling));
  }

  switchSibling(message, step) {
    const siblings = this.tree.children(message.parent_id);
    const index = siblings.findIndex((m) => m.id === message.id);
    const next = siblings[(index + step + siblings.length) % siblings.length];
    this.tree.leafId = this.tree.deepest(next.id);
    this.renderAll();
    this.actions.selectBranch(this.tree.leafId);
  }

  startEdit(article, message) {
    const body = article.querySelector(".message-body");
    const form = document.createElement("form");
    form.className = "edit-form";
    form.innerHTML = `<label><span class="sr-only">Edit your message</span>
      <textarea rows="3" data-testid="edit-input"></textarea></label>
      <div class="dialog-actions"><button type="button" data-edit-cancel>Cancel</button>
      <button type="submit" class="primary" data-testid="edit-send">Save and send</button></div>`;
    const textarea = form.querySelector("textarea");
    textarea.value = message.content;
    body.replaceWith(form);
    textarea.focus();
    const cancel = () => {
      form.replaceWith(body);
      article.querySelector("[data-edit]")?.focus();
    };
    form.querySelector("[data-edit-cancel]").addEventListener("click", cancel);
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Escape") cancel();
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = textarea.value.trim();
      if (!text) return;
      form.replaceWith(body);
      this.actions.edit(message.id, text);
    });
  }
}

// The server's message already says when to retry (error.retry_after is for programs).
export function describeError(error) {
  let text = error.message || "Something went wrong.";
  if (error.detail) text += ` (admin: ${error.detail})`;
  return text;
}
