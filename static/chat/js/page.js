/* The page itself: its configuration (#chat-config, written by the server), its elements,
 * and the small DOM helpers every part of the chat uses. Imports nothing. */

export const cfg = JSON.parse(document.getElementById("chat-config").textContent);

const $ = (id) => document.getElementById(id);

export const els = {
  provider: $("provider"),
  providerNote: $("provider-note"),
  model: $("model"),
  webSearch: $("web-search"),
  useDocuments: $("use-documents"),
  connection: $("connection"),
  title: $("conversation-title"),
  transcript: $("transcript"),
  emptyHint: $("empty-hint"),
  announcer: $("announcer"),
  error: $("error"),
  status: $("status"),
  composer: $("composer"),
  question: $("question"),
  attachment: $("attachment"),
  attachments: $("attachments"),
  documentsBar: $("documents-bar"),
  documents: $("conversation-documents"),
  waiting: $("waiting"),
  waitingText: $("waiting-text"),
  cancelWaiting: $("cancel-waiting"),
  send: $("send"),
  stop: $("stop"),
  newConversation: $("new-conversation"),
  conversationList: $("conversation-list"),
  conversationsEmpty: $("conversations-empty"),
  details: $("details"),
  search: $("conversation-search"),
  sidebar: $("sidebar"),
  drawerToggle: $("drawer-toggle"),
  drawerBackdrop: $("drawer-backdrop"),
  shortcuts: $("shortcuts"),
  conversationModel: $("conversation-model"),
  conversationTemperature: $("conversation-temperature"),
  systemPrompt: $("system-prompt"),
  saveAnswerSettings: $("save-answer-settings"),
  presetSelect: $("preset-select"),
  applyPreset: $("apply-preset"),
  deletePreset: $("delete-preset"),
  presetName: $("preset-name"),
  savePreset: $("save-preset"),
  searchCount: $("search-count"),
  actions: $("conversation-actions"),
  exportMarkdown: $("export-markdown"),
  exportJson: $("export-json"),
  share: $("share-conversation"),
  sharePanel: $("share-panel"),
  shareUrl: $("share-url"),
  copyShare: $("copy-share"),
  revokeShare: $("revoke-share"),
  deleteConversation: $("delete-conversation"),
  limits: $("limits"),
  filesPanel: $("files-panel"),
  filesStatus: $("files-status"),
  fileList: $("file-list"),
};

const csrfInput = document.querySelector('input[name="csrfmiddlewaretoken"]');
export const csrfToken = csrfInput ? csrfInput.value : "";

export function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children || []) if (child) node.appendChild(child);
  return node;
}

export function safeUrl(value) {
  if (typeof value !== "string" || !value) return null;
  try {
    const url = new URL(value, window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch (_err) {
    return null;
  }
}

export function showError(message) {
  els.error.textContent = message || "";
  els.error.hidden = !message;
}

export function setStatus(message) {
  // Rewriting the same text would make screen readers announce it again on every chunk.
  if (els.status.textContent !== (message || "")) els.status.textContent = message || "";
}

export function nearBottom() {
  const t = els.transcript;
  return t.scrollHeight - t.scrollTop - t.clientHeight < 80;
}

export function scrollToEnd(force) {
  if (force || nearBottom()) els.transcript.scrollTop = els.transcript.scrollHeight;
}

export function selectedMode() {
  const checked = document.querySelector('input[name="mode"]:checked');
  return checked ? checked.value : "chat";
}

// "off", "session" (this conversation) or "user" (all my conversations).
export function selectedMemory() {
  const checked = document.querySelector('input[name="memory"]:checked');
  return checked ? checked.value : "session";
}

export function setMode(mode) {
  const radio = document.querySelector('input[name="mode"][value="' + mode + '"]');
  if (radio) radio.checked = true;
}

export async function copyText(text, button) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
    setStatus("Copied to the clipboard.");
  } catch (_err) {
    button.textContent = "Copy failed";
    setStatus("The browser did not allow copying; select the text instead.");
  }
  window.setTimeout(() => (button.textContent = label), 1500);
}
