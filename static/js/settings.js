// Per-conversation settings (system prompt, temperature, max output tokens, image detail) and the
// theme toggle.

const THEME_KEY = "lapis-theme";

export function setupTheme(button) {
  const html = document.documentElement;
  const apply = (theme) => {
    if (theme) html.dataset.theme = theme;
    const dark = effectiveTheme() === "dark";
    document.querySelectorAll("link[data-hljs-theme]").forEach((link) => {
      link.disabled = (link.dataset.hljsTheme === "dark") !== dark;
    });
  };
  const effectiveTheme = () => {
    if (html.dataset.theme === "light" || html.dataset.theme === "dark") return html.dataset.theme;
    return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  };
  apply(localStorage.getItem(THEME_KEY));
  button?.addEventListener("click", () => {
    const next = effectiveTheme() === "dark" ? "light" : "dark";
    localStorage.setItem(THEME_KEY, next);
    apply(next);
  });
}

export class SettingsPanel {
  constructor({ root, api, getConversation, onSaved }) {
    this.dialog = root.querySelector("[data-settings-panel]");
    this.form = root.querySelector("[data-settings-form]");
    this.error = root.querySelector("[data-settings-error]");
    this.api = api;
    this.getConversation = getConversation;
    this.onSaved = onSaved;
    root.querySelector("[data-settings-open]").addEventListener("click", () => this.open());
    root.querySelector("[data-settings-cancel]").addEventListener("click", () => this.dialog.close());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
  }

  open() {
    const conversation = this.getConversation();
    if (!conversation) return;
    this.form.system_prompt.value = conversation.system_prompt || "";
    this.form.temperature.value = conversation.temperature ?? "";
    this.form.max_output_tokens.value = conversation.max_output_tokens ?? "";
    this.form.image_detail.value = conversation.image_detail || "auto";
    this.error.hidden = true;
    this.dialog.showModal();
  }

  async save() {
    const conversation = this.getConversation();
    const number = (value) => (value === "" ? null : Number(value));
    try {
      const data = await this.api.post(`conversations/${conversation.id}/settings`, {
        system_prompt: this.form.system_prompt.value,
        temperature: number(this.form.temperature.value),
        max_output_tokens: number(this.form.max_output_tokens.value),
        image_detail: this.form.image_detail.value,
      });
      this.onSaved(data.conversation);
      this.dialog.close();
    } catch (error) {
      this.error.textContent = error.message;
      this.error.hidden = false;
    }
  }
}
