// The composer: Enter sends, Shift+Enter starts a new line, Escape stops the answer being written.

export class Composer {
  constructor({ form, onSend, onStop, hasAttachments }) {
    this.form = form;
    this.hasAttachments = hasAttachments || (() => false); // images alone may be sent
    this.input = form.querySelector("[data-composer-input]");
    this.sendButton = form.querySelector("[data-send]");
    this.stopButton = form.querySelector("[data-stop]");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit(onSend);
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit(onSend);
      }
    });
    this.input.addEventListener("input", () => this.grow());
    this.stopButton.addEventListener("click", () => onStop());
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || this.stopButton.hidden || event.defaultPrevented) return;
      if (event.target.closest?.("dialog, .edit-form")) return; // there Escape closes or cancels
      event.preventDefault();
      onStop();
    });
  }

  submit(onSend) {
    const text = this.input.value;
    if ((!text.trim() && !this.hasAttachments()) || this.sendButton.disabled) return;
    if (onSend(text) !== false) {
      this.input.value = "";
      this.grow();
    }
  }

  grow() {
    this.input.style.height = "auto"; // CSSOM, not an inline style attribute: allowed by the CSP
    this.input.style.height = `${Math.min(this.input.scrollHeight, 240)}px`;
  }

  setStreaming(streaming) {
    this.stopButton.hidden = !streaming;
    this.sendButton.hidden = streaming;
  }

  focus() {
    this.input.focus();
  }
}
