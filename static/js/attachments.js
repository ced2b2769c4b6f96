// Images for the next message: picked, dropped or pasted; each is uploaded at once to
// /media/uploads/ (the server checks and cleans it) and shown as a thumbnail with a remove button.
// A refused file shows the server's reason. At most MAX per message.

const MAX = 10;
const UPLOAD_URL = "/media/uploads/";

export class AttachmentTray {
  constructor({ root, form, csrf }) {
    this.tray = form.querySelector("[data-attachment-tray]");
    this.errorEl = form.querySelector("[data-attach-error]");
    this.input = form.querySelector("[data-attach-input]");
    this.button = form.querySelector("[data-attach]");
    this.csrf = csrf;
    this.items = []; // {key, name, id|null, element}
    this.button.addEventListener("click", () => this.input.click());
    this.input.addEventListener("change", () => {
      this.add([...this.input.files]);
      this.input.value = "";
    });
    form.addEventListener("paste", (event) => {
      const files = [...(event.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
      if (files.length) {
        event.preventDefault();
        this.add(files);
      }
    });
    root.addEventListener("dragover", (event) => {
      if ([...(event.dataTransfer?.types || [])].includes("Files")) {
        event.preventDefault();
        root.classList.add("dropping");
      }
    });
    root.addEventListener("dragleave", (event) => {
      if (event.target === root || !root.contains(event.relatedTarget)) root.classList.remove("dropping");
    });
    root.addEventListener("drop", (event) => {
      const files = [...(event.dataTransfer?.files || [])];
      root.classList.remove("dropping");
      if (!files.length) return;
      event.preventDefault();
      this.add(files);
    });
  }

  setEnabled(enabled) {
    this.button.disabled = !enabled;
  }

  add(files) {
    this.hideError();
    const room = MAX - this.items.length;
    if (files.length > room) {
      this.showError(`At most ${MAX} images can go with one message; ${files.length - Math.max(room, 0)} not added.`);
      files = files.slice(0, Math.max(room, 0));
    }
    files.forEach((file) => this.upload(file));
  }

  async upload(file) {
    const item = { key: Math.random().toString(36).slice(2), name: file.name || "pasted image", id: null };
    item.element = this.buildChip(item, URL.createObjectURL(file));
    this.items.push(item);
    this.render();
    const body = new FormData();
    body.append("file", file, file.name || "pasted.png");
    let data = null;
    let failure = null;
    try {
      const response = await fetch(UPLOAD_URL, {
        method: "POST", body, credentials: "same-origin", headers: { "X-CSRFToken": this.csrf },
      });
      try {
        data = await response.json();
      } catch {
        data = null;
      }
      if (!response.ok) failure = (data && data.error) || `the server answered ${response.status}`;
    } catch (error) {
      failure = `the upload failed (${error.message})`;
    }
    if (!this.items.includes(item)) return; // removed while uploading
    if (failure) {
      this.remove(item);
      this.showError(`${item.name}: ${failure}`);
      return;
    }
    item.id = data.id;
    item.element.dataset.attachmentId = data.id;
    item.element.classList.remove("uploading");
    item.element.querySelector("img").src = data.thumbnail_url;
  }

  buildChip(item, previewUrl) {
    const chip = document.createElement("div");
    chip.className = "attachment-chip uploading";
    chip.dataset.testid = "attachment-chip";
    const img = document.createElement("img");
    img.alt = item.name;
    img.src = previewUrl;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "attachment-remove";
    remove.dataset.testid = "attachment-remove";
    remove.setAttribute("aria-label", `Remove ${item.name}`);
    remove.textContent = "×";
    remove.addEventListener("click", () => this.remove(item));
    chip.append(img, remove);
    return chip;
  }

  remove(item) {
    this.items = this.items.filter((i) => i !== item);
    this.render();
  }

  render() {
    this.tray.replaceChildren(...this.items.map((i) => i.element));
    this.tray.hidden = this.items.length === 0;
  }

  uploading() {
    return this.items.some((i) => !i.id);
  }

  ids() {
    return this.items.filter((i) => i.id).map((i) => i.id);
  }

  clear() {
    this.items = [];
    this.render();
    this.hideError();
  }

  showError(text) {
    this.errorEl.textContent = text;
    this.errorEl.hidden = false;
  }

  hideError() {
    this.errorEl.hidden = true;
  }
}

// The figures of a message's images: thumbnails linking to the full picture; generated ones
// with their revised prompt and a download link.
export function renderAttachments(container, attachments) {
  container.replaceChildren(...(attachments || []).map((a) => {
    const figure = document.createElement("figure");
    figure.className = `attachment attachment-${a.kind}`;
    figure.dataset.testid = "attachment";
    figure.dataset.attachmentId = a.id;
    const link = document.createElement("a");
    link.href = a.url;
    link.target = "_blank";
    link.rel = "noopener";
    const img = document.createElement("img");
    img.src = a.kind === "generated" ? a.url : a.thumbnail_url;
    img.alt = a.revised_prompt || a.name || "image";
    img.width = a.width;
    img.height = a.height;
    img.loading = "lazy";
    link.append(img);
    figure.append(link);
    if (a.kind === "generated") {
      const caption = document.createElement("figcaption");
      if (a.revised_prompt) {
        const revised = document.createElement("span");
        revised.className = "revised-prompt";
        revised.dataset.testid = "revised-prompt";
        revised.textContent = a.revised_prompt;
        caption.append(revised);
      }
      const download = document.createElement("a");
      download.className = "download";
      download.href = a.download_url;
      download.dataset.testid = "download";
      download.textContent = "Download";
      caption.append(download);
      figure.append(caption);
    }
    return figure;
  }));
  container.hidden = !(attachments && attachments.length);
}
