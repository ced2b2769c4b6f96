// The chat page: wires the socket, the message list, the composer, the sidebar and the settings.
// The server is the truth: on load and on every reconnect, streaming answers are resumed from it,
// and so are an answer another tab started and an answer that went silent (a lost tail).

import { createApi, newClientId } from "./api.js";
import { AttachmentTray } from "./attachments.js";
import { Composer } from "./composer.js";
import { ContextMeter } from "./context.js";
import { Organiser } from "./folders.js";
import { describeError, MessageTree, MessageView } from "./messages.js";
import { revealMessage, SearchBox, targetFromHash } from "./search.js";
import { SettingsPanel, setupTheme } from "./settings.js";
import { Sidebar } from "./sidebar.js";
import { ChatSocket } from "./socket.js";
import { ConversationUsage } from "./usage.js";
import { TemporaryChat } from "./temporary.js";

const root = document.querySelector("[data-chat]");
const api = createApi(root);
const tree = new MessageTree();
const contextMeter = new ContextMeter({ root, api });
const conversationUsage = new ConversationUsage({ root, api });
const socket = new ChatSocket(root.dataset.wsPath);
const picker = root.querySelector("[data-model-picker]");
const badge = root.querySelector("[data-simulated-badge]");
const titleEl = root.querySelector("[data-conversation-title]");
const errorEl = root.querySelector("[data-chat-error]");
const offlineEl = document.querySelector("[data-offline]");
const settingsButton = root.querySelector("[data-settings-open]");
const temporaryChat = new TemporaryChat({ root, socket });
const shareLink = root.querySelector("[data-share-open]");

const state = {
  conversation: null,
  conversationId: root.dataset.conversationId || null,
  pendingNew: new Set(), // client ids of sends that start a new conversation
  resyncing: new Set(), // message ids waiting for a snapshot after a seq gap
  sent: new Set(), // client ids of this page's send/regenerate/edit frames: answers it follows already
  watchdogs: new Map(), // message id → timer: resume a streaming answer that went silent
};
// The channel layer may drop frames, the last deltas and ``done`` included; a streaming answer
// with no frame for this long is asked for again (server setting CHAT_STREAM_SILENCE).
const SILENCE_MS = Number(root.dataset.streamSilenceMs) || 10000;

const view = new MessageView({
  list: root.querySelector("[data-message-list]"),
  announcer: root.querySelector("[data-announcer]"),
  tree,
  actions: {
    regenerate: (id) => send({ type: "regenerate", message_id: id, client_id: newClientId() }),
    edit: (id, text) => send({ type: "edit", message_id: id, text, client_id: newClientId() }),
    selectBranch: (leafId) => {
      if (state.conversationId) {
        api.post(`conversations/${state.conversationId}/leaf`, { message_id: leafId }).catch(() => {});
      }
      refreshStreaming();
    },
  },
});

const composerForm = root.querySelector("[data-composer]");
const imageOptionsEl = root.querySelector("[data-image-options]");
const tray = new AttachmentTray({ root, form: composerForm, csrf: root.dataset.csrf });

// With an image model picked: its size/quality/style choices; otherwise attachments.
function showImageOptions() {
  const option = picker.selectedOptions[0];
  const image = !!(option && option.dataset.image === "1");
  imageOptionsEl.hidden = !image;
  tray.setEnabled(!image && !picker.disabled);
  imageOptionsEl.querySelectorAll("[data-image-option]").forEach((select) => {
    const name = select.dataset.imageOption;
    const values = image ? (option.dataset[`${name === "quality" ? "qualities" : `${name}s`}`] || "").split(",").filter(Boolean) : [];
    const previous = select.value;
    select.replaceChildren(...values.map((v) => new Option(v, v)));
    if (values.includes(previous)) select.value = previous;
    select.closest("label").hidden = values.length === 0;
  });
}

function imageChoices() {
  if (imageOptionsEl.hidden) return undefined;
  const choices = {};
  imageOptionsEl.querySelectorAll("[data-image-option]").forEach((select) => {
    if (!select.closest("label").hidden && select.value) choices[select.dataset.imageOption] = select.value;
  });
  return choices;
}

const composer = new Composer({
  form: composerForm,
  hasAttachments: () => tray.ids().length > 0,
  onSend: (text) => {
    if (tray.uploading()) {
      showError("Wait for the images to finish uploading, then send.");
      return false;
    }
    const clientId = newClientId();
    const frame = {
      type: "send",
      client_id: clientId,
      text,
      conversation_id: state.conversationId,
      model: picker.value || null,
      parent_id: tree.leafId,
    };
    const attachments = tray.ids();
    if (attachments.length) frame.attachments = attachments;
    const image = imageChoices();
    if (image) frame.image = image;
    if (!state.conversationId && temporaryChat.wanted()) frame.temporary = true;
    if (!state.conversationId) state.pendingNew.add(clientId);
    // The tray empties once the server stored the message; a refused send keeps the images.
    if (attachments.length) state.trayClientId = clientId;
    return send(frame);
  },
  onStop: () => {
    tree.streaming().forEach((m) => socket.send({ type: "stop", message_id: m.id }));
  },
});

const sidebar = new Sidebar({
  root,
  api,
  getCurrentId: () => state.conversationId,
  onDeleted: (id) => {
    if (id === state.conversationId) location.assign("/");
  },
  onError: showError,
});

const organiser = new Organiser({
  root,
  api,
  onError: showError,
  reload: () => sidebar.load(1),
  onDeleted: (ids) => {
    if (ids.includes(state.conversationId)) location.assign("/");
  },
});
sidebar.organiser = organiser;
new SearchBox({ root, api, onError: showError });

// A search result: show its message (on its branch), now or once the conversation has loaded.
function revealTarget() {
  const id = targetFromHash();
  if (!id) return;
  revealMessage({ id, tree, view, list: root.querySelector("[data-message-list]"), selectBranch: view.actions.selectBranch });
}
window.addEventListener("hashchange", revealTarget);

new SettingsPanel({
  root,
  api,
  getConversation: () => state.conversation,
  onSaved: (conversation) => setConversation(conversation),
});
setupTheme(document.querySelector("[data-theme-toggle]"));

function send(frame) {
  hideError();
  if (frame.client_id) state.sent.add(frame.client_id);
  socket.send(frame);
  return true;
}

function showError(text) {
  errorEl.textContent = text;
  errorEl.hidden = false;
}

function hideError() {
  errorEl.hidden = true;
}

function showBadge() {
  const option = picker.selectedOptions[0];
  badge.hidden = !(option && option.dataset.simulated === "1");
}

function showTitle(title) {
  titleEl.textContent = title;
  document.title = `${title} · Lapis`;
}

function setConversation(conversation) {
  state.conversation = conversation;
  state.conversationId = conversation.id;
  showTitle(conversation.title);
  settingsButton.hidden = false;
  shareLink.href = `/c/${conversation.id}/share/`;
  shareLink.hidden = false;
  if (conversation.model_key && [...picker.options].some((o) => o.value === conversation.model_key)) {
    picker.value = conversation.model_key;
    showBadge();
    showImageOptions();
  }
  sidebar.markCurrent(conversation.id);
  temporaryChat.show(conversation);
}

function refreshStreaming() {
  composer.setStreaming(tree.path().some((m) => m.status === "streaming"));
}

function resume(message) {
  state.resyncing.add(message.id);
  socket.send({ type: "resume", message_id: message.id, seq: message.seq || 0 });
  watch(message.id);
}

// (Re)start the silence timer of a streaming answer; every frame of the answer calls this.
// Silence can be honest (Azure is slow to the first token, a picture is drawn): a resume then
// only costs one snapshot, so no server heartbeat is needed to tell the cases apart.
function watch(id) {
  clearTimeout(state.watchdogs.get(id));
  state.watchdogs.delete(id);
  const message = tree.byId.get(id);
  if (!message || message.status !== "streaming") return;
  state.watchdogs.set(id, setTimeout(() => {
    state.watchdogs.delete(id);
    const current = tree.byId.get(id);
    if (current && current.status === "streaming") resume(current);
  }, SILENCE_MS));
}

// Whether this page asked for the answer (its socket follows it from the start): the answer
// to its regenerate, or the answer to a question it sent or edited.
function startedHere(answer) {
  if (answer.client_id && state.sent.has(answer.client_id)) return true;
  const question = tree.byId.get(answer.parent_id);
  return !!(question && question.client_id && state.sent.has(question.client_id));
}

async function loadConversation(id) {
  try {
    const data = await api.get(`conversations/${id}/`);
    setConversation(data.conversation);
    tree.reset(data.messages, data.current_leaf_id);
    view.renderAll();
    tree.streaming().forEach(resume);
    refreshStreaming();
    revealTarget();
    contextMeter.refresh(id);
    conversationUsage.refresh(id);
  } catch (error) {
    showError(`Could not load this conversation: ${error.message}`);
  }
}

const handlers = {
  "message.created": (frame) => {
    const message = frame.message;
    const adopting = !state.conversationId && message.client_id && state.pendingNew.has(message.client_id);
    if (adopting) {
      state.pendingNew.delete(message.client_id);
      state.conversationId = frame.conversation_id;
      // A temporary chat gets no address: a reload is a new chat, as it is gone then.
      if (!temporaryChat.wanted()) history.pushState({}, "", `/c/${frame.conversation_id}/`);
    }
    if (message.client_id && message.client_id === state.trayClientId) tray.clear();
    if (frame.conversation_id !== state.conversationId) return;
    tree.add(message);
    tree.leafId = message.id;
    view.renderAll();
    refreshStreaming();
    if (message.role === "assistant" && message.status === "streaming") {
      view.announce("Answer started.");
      // Started by another tab of this user: follow it live (snapshot, then its deltas and done).
      if (startedHere(message)) watch(message.id);
      else resume(message);
    }
  },
  "conversation.updated": (frame) => {
    if (!frame.conversation.temporary) sidebar.upsert(frame.conversation); // never listed
    if (frame.conversation.id === state.conversationId) setConversation(frame.conversation);
  },
  title: (frame) => {
    sidebar.setTitle(frame.conversation_id, frame.title);
    if (frame.conversation_id === state.conversationId) showTitle(frame.title);
  },
  delta: (frame) => {
    const message = tree.byId.get(frame.message_id);
    if (!message || state.resyncing.has(message.id) || frame.seq <= (message.seq || 0)) return;
    if (frame.seq !== (message.seq || 0) + 1) {
      resume(message); // a frame went missing: ask for the text so far again
      return;
    }
    message.content = (message.content || "") + frame.text;
    if (frame.reasoning) message.reasoning = (message.reasoning || "") + frame.reasoning;
    message.seq = frame.seq;
    view.update(message);
  },
  snapshot: (frame) => {
    const message = tree.byId.get(frame.message_id);
    if (!message) return;
    state.resyncing.delete(message.id);
    if (frame.seq < (message.seq || 0)) return; // an older view than ours
    message.content = frame.text;
    message.reasoning = frame.reasoning || "";
    message.seq = frame.seq;
    message.status = frame.status;
    view.update(message);
  },
  done: (frame) => {
    const message = tree.byId.get(frame.message_id);
    if (!message) return;
    if (frame.seq > (message.seq || 0) && !state.resyncing.has(message.id)) {
      resume(message); // we missed the end of the text: the final snapshot and done follow
      return;
    }
    if (state.resyncing.has(message.id)) return;
    Object.assign(message, {
      status: frame.status,
      finish_reason: frame.finish_reason,
      usage: frame.usage,
      error: frame.error || null,
      notice: frame.notice || message.notice,
    });
    view.update(message);
    refreshStreaming();
    contextMeter.refresh(state.conversationId);
    conversationUsage.refresh(state.conversationId);
    view.announce(frame.error ? `Answer ${frame.status}: ${describeError(frame.error)}` : `Answer ${frame.status}.`);
  },
  error: (frame) => {
    const message = frame.message_id && tree.byId.get(frame.message_id);
    if (message && message.status === "streaming" && frame.code === "not_found") return;
    showError(describeError(frame));
    view.announce(frame.message);
  },
  // Azure asked to wait before the first text (a short 429): say so until text arrives.
  retrying: (frame) => {
    const message = tree.byId.get(frame.message_id);
    if (!message || message.status !== "streaming") return;
    message.retrying = frame.message;
    view.update(message);
    view.announce(frame.message);
  },
  attachments: (frame) => {
    const message = tree.byId.get(frame.message_id);
    if (!message) return;
    const known = new Set((message.attachments || []).map((a) => a.id));
    message.attachments = [...(message.attachments || []), ...frame.attachments.filter((a) => !known.has(a.id))];
    view.update(message);
  },
  pong: () => {},
};

socket.addEventListener("frame", (event) => {
  const frame = event.detail;
  const handler = handlers[frame.type];
  if (handler) handler(frame);
  if (frame.message_id) watch(frame.message_id); // heard from it: restart (or end) its timer
});
socket.addEventListener("open", () => {
  root.dataset.connected = "1"; // the socket hears every answer of this user from now on
  offlineEl.hidden = true;
  root.classList.remove("offline");
  tree.streaming().forEach(resume);
});
socket.addEventListener("close", () => {
  root.dataset.connected = "0";
  offlineEl.hidden = false;
  root.classList.add("offline");
});

picker.addEventListener("change", () => {
  showBadge();
  showImageOptions();
  if (state.conversationId) {
    api.post(`conversations/${state.conversationId}/settings`, { model_key: picker.value })
      .then((data) => setConversation(data.conversation))
      .catch((error) => showError(`Could not switch the model: ${error.message}`));
  }
});
root.addEventListener("conversation-renamed", (event) => {
  if (event.detail.id === state.conversationId) setConversation(event.detail);
});
window.addEventListener("popstate", () => {
  // A search result in this conversation changes only the #m= part: hashchange shows it.
  const shown = state.conversationId ? `/c/${state.conversationId}/` : "/";
  if (location.pathname !== shown) location.reload();
});

showBadge();
showImageOptions();
socket.connect();
organiser.loadFolders().then(() => sidebar.load(1));
if (state.conversationId) loadConversation(state.conversationId);
composer.focus();
root.dataset.ready = "1";
