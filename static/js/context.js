// How full the conversation's context window is (a meter in the header), and where older messages
// stopped being sent as they are: a "Summary of earlier messages" marker (expandable to the summary)
// after the last message the summary covers, or a marker saying how many were left out.

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export class ContextMeter {
  constructor({ root, api }) {
    this.api = api;
    this.list = root.querySelector("[data-message-list]");
    this.meter = root.querySelector("[data-context-meter]");
    this.bar = this.meter?.querySelector("meter");
    this.label = this.meter?.querySelector("[data-context-label]");
    this.data = null;
    this.marker = null;
    this.requested = 0;
    // The message list is redrawn whole (new messages, branch switches): put the marker back.
    new MutationObserver(() => this.place()).observe(this.list, { childList: true });
  }

  async refresh(conversationId) {
    if (!conversationId || !this.meter) return;
    const ticket = ++this.requested;
    try {
      const data = await this.api.get(`conversations/${conversationId}/context`);
      if (ticket !== this.requested) return; // an older answer than one already shown
      this.show(data);
    } catch {
      this.meter.hidden = true; // the meter is a hint: no error banner for it
    }
  }

  show(data) {
    this.data = data;
    const percent = Math.min(100, Math.round((100 * data.used) / Math.max(1, data.prompt_budget)));
    this.bar.max = data.prompt_budget;
    this.bar.value = Math.min(data.used, data.prompt_budget);
    this.bar.high = Math.round(data.prompt_budget * 0.8);
    this.label.textContent = data.used > 0 && percent === 0 ? "<1%" : `${percent}%`;
    this.meter.title = `Context: ${data.used.toLocaleString()} of ${data.prompt_budget.toLocaleString()} tokens ` +
      `(${data.window.toLocaleString()}-token window, ${data.output_budget.toLocaleString()} kept for the answer)`;
    this.meter.dataset.used = String(data.used);
    this.meter.hidden = false;
    this.marker?.remove();
    this.marker = this.build(data);
    this.place();
  }

  build(data) {
    if (data.summary) {
      const details = document.createElement("details");
      details.className = "context-marker summary-marker";
      details.dataset.testid = "summary-marker";
      details.innerHTML = "<summary></summary><p class=\"summary-text\" data-testid=\"summary-text\"></p>";
      details.querySelector("summary").textContent =
        `Summary of earlier messages (${plural(data.summary.covered_count, "message")})`;
      details.querySelector("p").textContent = data.summary.text;
      details.dataset.after = data.summary.last_message_id;
      return details;
    }
    if (data.dropped > 0) {
      const note = document.createElement("p");
      note.className = "context-marker dropped-marker";
      note.dataset.testid = "dropped-marker";
      note.textContent = `${plural(data.dropped, "earlier message")} no longer fit the context window and ` +
        "are not sent to the model.";
      return note;
    }
    return null;
  }

  place() {
    const marker = this.marker;
    if (!marker) return;
    const anchor = marker.dataset.after &&
      this.list.querySelector(`[data-message-id="${CSS.escape(marker.dataset.after)}"]`);
    if (anchor) {
      if (anchor.nextElementSibling !== marker) anchor.after(marker);
    } else {
      const first = this.list.querySelector("[data-message-id]");
      if (first && first.previousElementSibling !== marker) first.before(marker);
      else if (!first) marker.remove();
    }
  }
}
