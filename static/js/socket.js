// The chat websocket: connects, reconnects with backoff, and tells the page when it is offline.
// Events: "open" (also after every reconnect: resume what was streaming), "close", "frame".

const MAX_DELAY_MS = 15000;
const PING_EVERY_MS = 20000;
const SILENCE_LIMIT_MS = 50000;

export class ChatSocket extends EventTarget {
  constructor(path) {
    super();
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    this.url = scheme + location.host + path;
    this.queue = [];
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.lastHeard = Date.now();
    setInterval(() => this.keepAlive(), PING_EVERY_MS);
    window.addEventListener("online", () => this.reconnectNow());
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    clearTimeout(this.timer);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.attempt = 0;
      this.lastHeard = Date.now();
      this.dispatchEvent(new Event("open"));
      const queued = this.queue.splice(0);
      queued.forEach((frame) => this.send(frame));
    });
    ws.addEventListener("message", (event) => {
      this.lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.dispatchEvent(new Event("close"));
      if (event.code === 4401) {
        location.assign("/login/?next=" + encodeURIComponent(location.pathname));
        return;
      }
      // 4429: too many open tabs (the page shows why); try again rarely, a tab may close.
      const backoff = event.code === 4429 ? MAX_DELAY_MS : Math.min(MAX_DELAY_MS, 400 * 2 ** this.attempt);
      const delay = backoff * (0.6 + Math.random() * 0.4);
      this.attempt += 1;
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }

  reconnectNow() {
    if (this.isOpen) return;
    this.attempt = 0;
    if (this.ws) this.ws.close();
    this.connect();
  }

  // Sends now, or once connected again (send/stop/edit are idempotent by client_id).
  send(frame) {
    if (this.isOpen) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    if (frame.type !== "resume" && frame.type !== "ping") this.queue.push(frame);
    return false;
  }

  keepAlive() {
    if (!this.isOpen) return;
    if (Date.now() - this.lastHeard > SILENCE_LIMIT_MS) {
      this.ws.close(); // a dead connection that never said so: the close handler reconnects
      return;
    }
    this.send({ type: "ping" });
  }
}
