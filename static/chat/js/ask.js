/* Asking: the composer (Enter sends, Shift+Enter adds a line, Escape stops), an option
 * chosen, an answer regenerated or a question edited and resent. Each sends one `query` message over the socket, once
 * the conversation has been started on the server. */

import { failCurrent, startTurn, stop } from "./answer.js";
import { ensureStarted, recordActivity } from "./api.js";
import { clearImages, pendingFiles, pendingLine, readyFiles } from "./attachments.js";
import { refreshConversations } from "./conversations.js";
import { cfg, els, selectedMemory, selectedMode, setMode, setStatus, showError } from "./page.js";
import { isOpen, send } from "./socket.js";
import { isGenerating, state } from "./state.js";

const WAIT_CHECK_MS = 250;

async function sendQuery(input) {
  showError("");
  if (!els.provider || isGenerating()) return false;
  if (!isOpen()) {
    showError("Not connected to the server yet; try again in a moment.");
    return false;
  }
  const files = input.files || readyFiles();
  const modelChosen = state.modelChosen;
  const turn = {
    question: input.query,
    answer: "",
    // Regenerated or edited: the turn (its first query) this answer is an alternative of.
    alternativeOf: input.alternativeOf || null,
    attachmentNames: files.map((f) => f.name),
    imageIds: files.filter((f) => f.kind === "image" && f.fileId).map((f) => f.fileId),
    // What the page shows until the server says which model answered (refreshDetails).
    provider: els.provider.value,
    model: els.model.value.trim(),
    mode: input.mode,
    status: "streaming",
    request: {
      provider: input.provider !== undefined ? input.provider : modelChosen ? els.provider.value : "",
      model: input.model !== undefined ? input.model : modelChosen ? els.model.value.trim() : "",
      selectedOption: input.selectedOption || null,
      webSearch: input.webSearch !== undefined ? input.webSearch : els.webSearch.checked,
      memory: input.memory !== undefined ? input.memory : selectedMemory(),
      useDocuments: input.useDocuments !== undefined ? input.useDocuments : !!(els.useDocuments && els.useDocuments.checked),
      files,
    },
  };
  const message = {
    type: "query",
    user_id: cfg.userId,
    session_id: state.conversation.id,
    query: input.query,
    model_provider: turn.request.provider,
    model_name: turn.request.model,
    mode: turn.mode,
    web_search: turn.request.webSearch,
    use_memory: turn.request.memory !== "off",
    // The server's default is all conversations; the page says which one it means.
    memory_scope: turn.request.memory === "user" ? "user" : "session",
    use_documents: turn.request.useDocuments,
    attachments: files.filter((f) => f.kind === "image").map((f) => f.fileId),
    selected_option: turn.request.selectedOption,
  };
  if (turn.alternativeOf) message.alternative_of = turn.alternativeOf;
  const documents = files.filter((f) => f.kind === "document").map((f) => f.fileId);
  if (documents.length) message.documents = documents;

  startTurn(turn, { phase: "starting" });
  setStatus("Sending…");
  try {
    // The session exists before its first question, so the query counts in it.
    await ensureStarted();
  } catch (err) {
    failCurrent("The conversation could not be started: " + err.message);
    return false;
  }
  if (!send(message)) {
    failCurrent("The connection dropped before the question was sent. Please ask again.");
    return false;
  }
  state.current.sent = true;
  recordActivity("query", { mode: turn.mode, regenerated: !!input.regenerated, attachments: files.length });
  if (!input.files) clearImages();
  if (state.conversation.turns.length === 0) refreshConversations();
  return true;
}

export function chooseOption(turn, option) {
  if (isGenerating()) return;
  setMode("shopping");
  turn.optionChosen = option;
  sendQuery({ query: option, selectedOption: option, mode: "shopping" }).then((sent) => {
    // Only a sent choice is final: if the socket is down, the buttons stay usable.
    if (!sent) turn.optionChosen = null;
  });
}

/* Regenerate (the same question) or edit and resend (`question`): the new answer is an
 * alternative of the turn, shown in its place with ‹ k/n › to go back to the others. */
export function regenerateTurn(turn, question) {
  if (isGenerating()) return Promise.resolve(false);
  const request = turn.request || {};
  return sendQuery({
    query: question || turn.question,
    alternativeOf: turn.alternativeOf || turn.queryId || null,
    mode: turn.mode || "chat",
    selectedOption: request.selectedOption || null,
    provider: request.provider,
    model: request.model,
    webSearch: request.webSearch,
    memory: request.memory,
    useDocuments: request.useDocuments,
    files: request.files || [],
    regenerated: true,
  });
}

/* Resolves true once no file is uploading or being read, false when the user cancels,
 * switches conversations or the time limit passes; the waiting line shows progress. */
function filesSettled(query) {
  const conversationId = state.conversation.id;
  const deadline = Date.now() + cfg.documentWaitSeconds * 1000;
  return new Promise((resolve) => {
    let timer = null;
    const finish = (settled) => {
      window.clearInterval(timer);
      state.waiting = null;
      els.waiting.hidden = true;
      els.send.disabled = false;
      resolve(settled);
    };
    state.waiting = { query, conversationId, cancel: () => finish(false) };
    els.send.disabled = true;
    els.waiting.hidden = false;
    const check = () => {
      if (state.conversation.id !== conversationId) return finish(false);
      if (!pendingFiles().length) return finish(true);
      if (Date.now() > deadline) {
        showError("Still waiting for " + pendingLine() + " after " + cfg.documentWaitSeconds + " s: ask again when it is ready, or remove it.");
        return finish(false);
      }
      els.waitingText.textContent = "Your question goes out when these are ready: " + pendingLine() + ".";
    };
    timer = window.setInterval(check, WAIT_CHECK_MS);
    check();
  });
}

async function submit(event) {
  event.preventDefault();
  if (isGenerating() || state.waiting) return;
  const query = els.question.value.trim();
  if (!query) {
    showError("Type a question first.");
    els.question.focus();
    return;
  }
  // The server answers from ready documents only (409 otherwise): the question waits.
  if (pendingFiles().length) {
    setStatus("Waiting for " + pendingLine() + "…");
    if (!(await filesSettled(query))) {
      setStatus("The question was not sent.");
      return;
    }
    if (isGenerating()) return;
  }
  // What was typed while the question waited stays for the next one.
  if (els.question.value.trim() === query) els.question.value = "";
  if (!(await sendQuery({ query, mode: selectedMode() })) && !els.question.value) els.question.value = query;
}

function keydown(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    els.composer.requestSubmit();
  } else if (event.key === "Escape" && isGenerating()) {
    event.preventDefault();
    stop();
  }
}

export function initComposer() {
  els.composer.addEventListener("submit", submit);
  els.question.addEventListener("keydown", keydown);
  els.stop.addEventListener("click", stop);
  els.cancelWaiting.addEventListener("click", () => {
    if (state.waiting) state.waiting.cancel();
    els.question.focus();
  });
}
