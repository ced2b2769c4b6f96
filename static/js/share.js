// A shared conversation: its messages come as JSON data (never HTML) and are rendered with the
// chat's own modules (markdown sanitised by render.js, images by attachments.js).

import { renderAttachments } from "./attachments.js";
import { copyText, renderMarkdown, renderPlain } from "./render.js";
import { setupTheme } from "./settings.js";

function build(message) {
  const article = document.createElement("article");
  article.className = `message message-${message.role}`;
  article.dataset.role = message.role;
  article.dataset.testid = "message";
  article.innerHTML = `<div class="message-meta"><span class="message-author"></span></div>
    <details class="message-reasoning" hidden><summary>Reasoning</summary>
    <div class="message-reasoning-text markdown"></div></details>
    <div class="message-body" data-testid="message-body"></div>
    <div class="message-attachments" data-testid="message-attachments" hidden></div>`;
  article.querySelector(".message-author").textContent =
    message.role === "user" ? "User" : message.model_key || "Assistant";
  const body = article.querySelector(".message-body");
  if (message.role === "assistant") {
    body.classList.add("markdown");
    renderMarkdown(body, message.content);
    if (message.reasoning) {
      const reasoning = article.querySelector(".message-reasoning");
      reasoning.hidden = false;
      renderMarkdown(reasoning.querySelector(".message-reasoning-text"), message.reasoning);
    }
  } else {
    renderPlain(body, message.content);
  }
  renderAttachments(article.querySelector(".message-attachments"), message.attachments);
  return article;
}

const root = document.querySelector("[data-shared]");
const data = JSON.parse(document.getElementById("shared-data").textContent);
root.querySelector("[data-shared-messages]").replaceChildren(...data.map(build));
root.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy-code]");
  if (button) copyText(button.parentElement.querySelector("code").textContent, button);
});
setupTheme(null);
root.dataset.ready = "1";
