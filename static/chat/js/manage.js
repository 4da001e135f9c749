/* Managing conversations: search in the sidebar, and for the open conversation export
 * (Markdown, JSON), a read-only share link the owner can revoke, and delete with its
 * data. The server does the work (/chat/api/search, .../export/{md,json}, .../share,
 * DELETE .../{id}); this module wires the controls. */

import { api } from "./api.js";
import { newConversation, refreshConversations, setSearchResults } from "./conversations.js";
import { copyText, cfg, els, setStatus, showError } from "./page.js";
import { isGenerating, state } from "./state.js";
import { forgetInflight } from "./storage.js";

const SEARCH_DELAY_MS = 250;
let searchTimer = null;
let searchSeq = 0; // only the newest search's answer is shown

function conversationPath(suffix) {
  return "conversations/" + encodeURIComponent(state.conversation.id) + (suffix || "");
}

async function runSearch() {
  const text = els.search.value.trim();
  const seq = ++searchSeq;
  if (!text) {
    els.searchCount.textContent = "";
    setSearchResults(null);
    return;
  }
  try {
    const result = await api("GET", "search?q=" + encodeURIComponent(text));
    if (seq !== searchSeq) return;
    const n = result.conversations.length;
    els.searchCount.textContent = n === 0 ? "No conversation matches." : n === 1 ? "1 conversation matches." : n + " conversations match.";
    setSearchResults(result.conversations);
  } catch (err) {
    if (seq === searchSeq) els.searchCount.textContent = "Search failed: " + err.message;
  }
}

export function focusSearch() {
  els.search.focus();
  els.search.select();
}

function renderShare(share) {
  els.sharePanel.hidden = !share;
  els.share.setAttribute("aria-expanded", share ? "true" : "false");
  els.share.textContent = share ? "Shared" : "Share";
  els.shareUrl.value = share ? share.url : "";
}

/* Called with the open conversation's detail (null before its first question). */
export function renderConversationActions(detail) {
  const started = !!detail && detail.session_id === state.conversation.id;
  els.actions.hidden = !started;
  if (!started) {
    renderShare(null);
    return;
  }
  const base = cfg.apiBase + conversationPath("/export/");
  els.exportMarkdown.href = base + "md";
  els.exportJson.href = base + "json";
  renderShare(detail.share);
}

async function share() {
  if (!els.sharePanel.hidden) {
    els.shareUrl.focus();
    els.shareUrl.select();
    return;
  }
  try {
    const result = await api("POST", conversationPath("/share"));
    renderShare(result.share);
    els.shareUrl.focus();
    els.shareUrl.select();
    setStatus("Share link made: anyone with it can read this conversation.");
  } catch (err) {
    showError("The link was not made: " + err.message);
  }
}

async function revokeShare() {
  try {
    await api("DELETE", conversationPath("/share"));
    renderShare(null);
    els.share.focus();
    setStatus("Sharing stopped: the link no longer opens the conversation.");
  } catch (err) {
    showError("Sharing was not stopped: " + err.message);
  }
}

async function deleteConversation() {
  if (isGenerating()) {
    showError("Stop the answer first, then delete the conversation.");
    return;
  }
  const title = els.title.textContent;
  if (!window.confirm('Delete "' + title + '" with its questions, answers and the files only it uses? This cannot be undone.')) return;
  const id = state.conversation.id;
  try {
    await api("DELETE", conversationPath(""));
  } catch (err) {
    showError("The conversation was not deleted: " + err.message);
    return;
  }
  forgetInflight(id);
  // Not started any more: leaving it must not send a beacon for a deleted session.
  state.conversation.started = false;
  newConversation();
  await refreshConversations();
  if (els.search.value.trim()) runSearch();
  setStatus('Deleted "' + title + '".');
}

export function initManage() {
  els.search.addEventListener("input", () => {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(runSearch, SEARCH_DELAY_MS);
  });
  els.search.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && els.search.value) {
      event.preventDefault();
      els.search.value = "";
      runSearch();
    }
  });
  els.share.addEventListener("click", share);
  els.revokeShare.addEventListener("click", revokeShare);
  els.copyShare.addEventListener("click", () => copyText(els.shareUrl.value, els.copyShare));
  els.deleteConversation.addEventListener("click", deleteConversation);
}
