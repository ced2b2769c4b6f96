// Temporary chats: the composer's toggle for a new conversation, the note while one is shown,
// and the `watch` frame that keeps the chat on the server while this tab is open (sent again
// on every reconnect). The server deletes it when the last tab holding it closes.

export class TemporaryChat {
  constructor({ root, socket }) {
    this.root = root;
    this.socket = socket;
    this.toggle = root.querySelector("[data-temporary-toggle]");
    this.note = root.querySelector("[data-temporary-note]");
    this.conversationId = null;
    this.toggle?.addEventListener("change", () => {
      this.note.hidden = !this.toggle.checked;
    });
    socket.addEventListener("open", () => this.watch());
  }

  // Whether the send that starts a new conversation asks for a temporary one.
  wanted() {
    return !!(this.toggle && this.toggle.checked && !this.toggle.disabled);
  }

  // A conversation is shown: lock the toggle to what it is, and keep it if it is temporary.
  show(conversation) {
    const temporary = !!conversation.temporary;
    if (this.toggle) {
      this.toggle.checked = temporary;
      this.toggle.disabled = true;
      this.toggle.closest("label").hidden = !temporary;
    }
    this.note.hidden = !temporary;
    this.root.dataset.temporary = temporary ? "1" : "0";
    if (temporary && this.conversationId !== conversation.id) {
      this.conversationId = conversation.id;
      this.watch();
    }
  }

  watch() {
    if (this.conversationId && this.root.dataset.connected === "1") {
      this.socket.send({ type: "watch", conversation_id: this.conversationId });
    }
  }
}
