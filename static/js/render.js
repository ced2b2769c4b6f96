// Markdown → sanitised DOM. The whole accumulated text is parsed and sanitised on every render,
// so a half-written tag can never slip through. Off-site images are not loaded: they become links.

import { marked } from "../vendor/marked/marked.esm.js";
import DOMPurify from "../vendor/dompurify/purify.es.mjs";
import hljs from "../vendor/highlight/highlight.min.js";

marked.use({ gfm: true, breaks: false, async: false });

const PURIFY = {
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option", "iframe",
    "object", "embed", "video", "audio", "source", "picture", "track", "link", "meta", "base",
    // SVG elements that load a URL of their own (the CSP blocks them too; defence in depth).
    "image", "feImage", "feimage"],
  FORBID_ATTR: ["style", "srcset", "formaction", "ping", "background"],
  // Links from model output: http(s) and mailto only (no tel:, sms:, ftp:, javascript: ...); a
  // value without a scheme (relative, #anchor) stays. data:image/ in <img> is DOMPurify's own rule.
  ALLOWED_URI_REGEXP: /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i,
};

function sameOrigin(url) {
  if (url.startsWith("data:image/")) return true;
  try {
    return new URL(url, location.href).origin === location.origin;
  } catch {
    return false;
  }
}

// Runs inside DOMPurify's inert document, before any node reaches the page.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "IMG") {
    const src = node.getAttribute("src") || "";
    if (!sameOrigin(src)) {
      node.removeAttribute("src");
      node.setAttribute("data-blocked-src", src);
    }
  } else if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("rel", "noopener noreferrer nofollow");
    node.setAttribute("target", "_blank");
  }
});

function blockedImage(img) {
  const src = img.getAttribute("data-blocked-src");
  const alt = img.getAttribute("alt") || "image";
  let link;
  if (/^https?:/i.test(src)) {
    link = document.createElement("a");
    link.href = src;
    link.rel = "noopener noreferrer nofollow";
    link.target = "_blank";
  } else {
    link = document.createElement("span");
  }
  link.className = "blocked-image";
  link.dataset.testid = "blocked-image";
  link.textContent = `[external image not loaded: ${alt}]`;
  link.title = src;
  return link;
}

// Highlighting is the costly part of a render, and a streaming answer is rendered once per frame:
// finished blocks come from this cache, and a block still being written is left plain until its
// closing fence arrives (or the answer ends).
const highlighted = new Map();
const HIGHLIGHT_CACHE_SIZE = 200;

function highlightedHtml(language, text) {
  const key = `${language}\n${text}`;
  let html = highlighted.get(key);
  if (html === undefined) {
    html = language && hljs.getLanguage(language)
      ? hljs.highlight(text, { language, ignoreIllegals: true }).value
      : hljs.highlightAuto(text).value;
    if (highlighted.size >= HIGHLIGHT_CACHE_SIZE) highlighted.delete(highlighted.keys().next().value);
    highlighted.set(key, html);
  }
  return html;
}

function highlight(code) {
  const match = /language-([\w+#.-]+)/.exec(code.className);
  code.innerHTML = highlightedHtml(match ? match[1] : "", code.textContent); // highlight.js escapes the text
  code.classList.add("hljs");
}

// True when the text ends inside a fenced code block (an odd number of fence lines so far).
function endsInOpenFence(text) {
  return ((text || "").match(/^ {0,3}(```|~~~)/gm) || []).length % 2 === 1;
}

function decorateCode(pre) {
  const wrapper = document.createElement("div");
  wrapper.className = "code-block";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy-button";
  button.dataset.copyCode = "";
  button.dataset.testid = "copy-code";
  button.textContent = "Copy";
  pre.replaceWith(wrapper);
  wrapper.append(button, pre);
}

// `streaming`: the text is still growing, so a trailing unfinished code block is not highlighted yet.
export function renderMarkdown(target, text, { streaming = false } = {}) {
  const html = DOMPurify.sanitize(marked.parse(text || ""), PURIFY);
  const template = document.createElement("template"); // inert: nothing loads or runs here
  template.innerHTML = html;
  const content = template.content;
  content.querySelectorAll("img[data-blocked-src]").forEach((img) => img.replaceWith(blockedImage(img)));
  const blocks = [...content.querySelectorAll("pre > code")];
  if (streaming && endsInOpenFence(text)) blocks.pop();
  blocks.forEach(highlight);
  content.querySelectorAll("pre").forEach(decorateCode);
  target.replaceChildren(content);
}

export function renderPlain(target, text) {
  target.textContent = text || "";
}

export async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    flash(button, "Copied");
  } catch {
    flash(button, "Copy failed");
  }
}

function flash(button, label) {
  if (!button) return;
  const original = button.dataset.label || button.textContent;
  button.dataset.label = original;
  button.textContent = label;
  setTimeout(() => {
    button.textContent = original;
  }, 1500);
}
