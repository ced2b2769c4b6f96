// The banner above the messages for a model that is rate-limited or failing right now.
// Polls GET /models/health/ (the server's shared view of every process), whose answer also
// says how often to ask; shows the sentence for the model the picker has selected.
const banner = document.querySelector("[data-model-health]");
const picker = document.querySelector("[data-model-picker]");
let notices = {};
let pollMs = 15000;

function show() {
  const text = (picker && notices[picker.value]) || "";
  if (banner.textContent !== text) banner.textContent = text;
  banner.hidden = !text;
}

async function poll() {
  if (!document.hidden) {
    try {
      const response = await fetch(banner.dataset.healthUrl, {
        headers: { accept: "application/json" },
        credentials: "same-origin",
      });
      if (response.ok) {
        const data = await response.json();
        notices = data.notices || {};
        if (data.poll_ms > 0) pollMs = data.poll_ms;
        show();
      }
    } catch {
      // Offline or restarting: the banner keeps what it knew; the next poll tries again.
    }
  }
  setTimeout(poll, pollMs);
}

if (banner) {
  picker?.addEventListener("change", show);
  // chat.js sets the picker when a conversation opens, without a change event: look again
  // every second (no request: the notices are the last poll's).
  setInterval(show, 1000);
  poll();
}
