/* The conversations sidebar: the server keeps every conversation; the list shows them,
 * opening one reads its turns back, and each can be renamed. */

import { api, browserEnvironment, leaveConversation } from "./api.js";
import { documentsFromServer, renderAttachments } from "./attachments.js";
import { renderDetails } from "./details.js";
import { el, els, scrollToEnd, setStatus, showError } from "./page.js";
import { isGenerating, state } from "./state.js";
import { newId, rememberCurrent } from "./storage.js";
import { clearTranscript, renderAllOptionsEnabled, renderTurn, turnFromStored } from "./transcript.js";

let listed = []; // the rows of /chat/api/conversations
let searchHits = null; // the rows of /chat/api/search while the search box has words

/* Show these search hits instead of the whole list (null: the whole list again). */
export function setSearchResults(hits) {
  searchHits = hits;
  renderConversationList();
}

export async function refreshConversations() {
  try {
    listed = (await api("GET", "conversations")).conversations;
  } catch (_err) {
    return; // the list stays as it was; the chat itself still works
  }
  renderConversationList();
}

function conversationTitle(row) {
  if (row.title) return row.title;
  // The server names a conversation by its first stored question; until that question
  // is stored (it is being answered), the page knows it already.
  if (row.session_id === state.conversation.id) {
    const first = state.conversation.turns[0] || (state.current && state.current.turn);
    if (first && first.question) return first.question.split(/\s+/).join(" ").trim();
  }
  return "Untitled conversation";
}

function renderConversationList() {
  const conversation = state.conversation;
  els.conversationList.replaceChildren();
  const rows = searchHits || listed;
  els.conversationsEmpty.hidden = listed.length > 0;
  for (const row of rows) {
    const isCurrent = row.session_id === conversation.id;
    const open = el("button", {
      type: "button",
      className: "open",
      "aria-current": isCurrent ? "true" : null,
      text: conversationTitle(row),
    });
    open.disabled = isGenerating();
    open.addEventListener("click", () => openConversation(row.session_id, { focus: true }));
    const rename = el("button", {
      type: "button",
      className: "link-button rename",
      "aria-label": "Rename " + conversationTitle(row),
      text: "Rename",
    });
    const item = el("li", { "data-session-id": row.session_id, className: isCurrent ? "current" : null }, [
      open,
      el("span", { className: "when note", text: new Date(row.started_at).toLocaleString() }),
      rename,
      row.snippet ? el("span", { className: "snippet note", text: "In the " + row.matched + ": " + row.snippet }) : null,
    ]);
    rename.addEventListener("click", () => startRename(item, row));
    els.conversationList.appendChild(item);
  }
  if (conversation.id) {
    const row = listed.find((r) => r.session_id === conversation.id);
    els.title.textContent = row && (row.title || conversation.turns.length || state.current) ? conversationTitle(row) : "New conversation";
  }
}

function startRename(item, row) {
  const id = "rename-" + row.session_id;
  const input = el("input", { type: "text", id, maxlength: "200", value: row.title || "" });
  const save = el("button", { type: "submit", className: "small primary", text: "Save" });
  const cancel = el("button", { type: "button", className: "small", text: "Cancel" });
  const form = el("form", { className: "rename-form" }, [
    el("label", { for: id, className: "visually-hidden", text: "New title" }),
    input,
    save,
    cancel,
  ]);
  const done = () => {
    renderConversationList();
    const again = els.conversationList.querySelector('li[data-session-id="' + CSS.escape(row.session_id) + '"] button.rename');
    if (again) again.focus();
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const result = await api("PATCH", "conversations/" + encodeURIComponent(row.session_id), { title: input.value });
      row.title = result.title;
      await refreshConversations();
      setStatus("Renamed.");
    } catch (err) {
      showError("The title was not saved: " + err.message);
      return;
    }
    done();
  });
  cancel.addEventListener("click", done);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      done();
    }
  });
  item.replaceChildren(form);
  input.focus();
  input.select();
}

export async function openConversation(id, { focus, skipQueryId } = {}) {
  if (isGenerating()) return;
  const previous = state.conversation.started && state.conversation.id !== id ? state.conversation.id : null;
  showError("");
  let detail = null;
  try {
    detail = await api("GET", "conversations/" + encodeURIComponent(id));
  } catch (err) {
    if (err.status !== 404) {
      showError("The conversation could not be opened: " + err.message);
      return;
    }
  }
  if (previous) leaveConversation(previous);
  clearTranscript();
  state.conversation = { id, started: !!detail, turns: [], documents: [] };
  documentsFromServer(detail && detail.documents, state.conversation);
  renderAttachments();
  rememberCurrent();
  for (const stored of detail ? detail.turns : []) {
    if (stored.query_id === skipQueryId) continue; // resumed below, live
    const turn = turnFromStored(stored);
    renderTurn(turn);
    state.conversation.turns.push(turn);
  }
  renderAllOptionsEnabled();
  renderDetails(detail);
  renderConversationList();
  if (detail) {
    // Coming back (a reload, or opening it again) keeps the session open.
    api("POST", "conversations", { session_id: id, ...browserEnvironment() }).catch(() => {});
  }
  scrollToEnd(true);
  if (focus) {
    els.title.focus();
    setStatus("Opened " + els.title.textContent + ".");
  }
}

export function newConversation() {
  if (isGenerating()) return;
  if (state.conversation.started) leaveConversation(state.conversation.id);
  clearTranscript();
  state.conversation = { id: newId(), started: false, turns: [], documents: [] };
  renderAttachments();
  rememberCurrent();
  renderDetails(null);
  renderConversationList();
  els.title.textContent = "New conversation";
  showError("");
  setStatus("New conversation.");
  els.question.focus();
}

export function initConversations() {
  els.newConversation.addEventListener("click", newConversation);
}
