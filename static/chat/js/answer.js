/* The answer being generated: its turn from start to finish, the events the server sends
 * for it (node, chunk, final, error, done; replayed ones dropped by event id), stopping
 * it, and resuming it after a reconnect or a reload (the server replays only what was
 * missed after `last_event_id`). */

import { announce, resetAnnouncer, speakNow } from "./announcer.js";
import { refreshConversations } from "./conversations.js";
import { refreshDetails } from "./details.js";
import { refreshLimits } from "./limits.js";
import { els, scrollToEnd, setStatus, showError } from "./page.js";
import { send } from "./socket.js";
import { state } from "./state.js";
import { forgetInflight, saveInflight } from "./storage.js";
import {
  applyFinal,
  cancelAnswerRender,
  renderAllOptionsEnabled,
  renderAnswer,
  renderExtras,
  renderTurn,
  scheduleAnswerRender,
  settleGroup,
} from "./transcript.js";

function setGenerating(on) {
  els.send.disabled = on || !els.provider;
  els.stop.hidden = !on;
  els.stop.disabled = false;
  for (const button of els.transcript.querySelectorAll("button.option, button.regenerate")) {
    button.disabled = on || !els.provider;
  }
  for (const button of els.conversationList.querySelectorAll("button.open")) button.disabled = on;
  els.newConversation.disabled = on;
  if (!on) renderAllOptionsEnabled();
}

/* Show `turn` as being answered; `fields` start the in-flight record (phase, queryId…). */
export function startTurn(turn, fields) {
  resetAnnouncer();
  const view = renderTurn(turn);
  view.answer.setAttribute("aria-busy", "true");
  view.article.classList.add("streaming");
  state.current = Object.assign(
    { turn, view, queryId: null, lastEventId: null, seen: new Set(), cancelPending: false },
    fields,
  );
  setGenerating(true);
  scrollToEnd(true);
}

function finishTurn(status) {
  if (!state.current) return;
  const { turn, view } = state.current;
  const conversation = state.conversation;
  turn.status = status;
  cancelAnswerRender();
  speakNow();
  view.answer.removeAttribute("aria-busy");
  view.article.classList.remove("streaming");
  if (turn.queryId) view.article.dataset.queryId = turn.queryId;
  settleGroup(turn, view);
  renderAnswer(turn, view, true);
  conversation.turns.push(turn);
  forgetInflight(conversation.id);
  const stopHadFocus = document.activeElement === els.stop;
  state.current = null;
  renderExtras(turn, view);
  setGenerating(false);
  if (stopHadFocus) els.question.focus();
  setStatus(status === "cancelled" ? "Stopped." : status === "failed" ? "The answer failed." : "Answer complete.");
  scrollToEnd(false);
  // The list changes only when a conversation gets its title (its first question).
  if (conversation.turns.length === 1) refreshConversations();
  refreshDetails();
  refreshLimits();
}

export function failCurrent(message) {
  if (!state.current) return;
  state.current.turn.error = message;
  showError(message);
  finishTurn("failed");
}

/* The socket is (again) open: pick the answer in flight back up. */
export function resumeAfterConnect() {
  const current = state.current;
  if (current && current.queryId) {
    current.phase = "resuming";
    send({ type: "resume", query_id: current.queryId, last_event_id: current.lastEventId });
    if (current.cancelPending) send({ type: "cancel", query_id: current.queryId });
    setStatus("Resuming the answer…");
  } else if (current && current.phase === "starting" && current.sent) {
    // The connection dropped before the server named the query: it cannot be followed.
    failCurrent("The connection dropped before the answer started. Please ask again.");
  }
}

export function onMessage(data) {
  let event;
  try {
    event = JSON.parse(data);
  } catch (_err) {
    return;
  }
  if (!event || typeof event !== "object") return;
  const current = state.current;

  if (!event.query_id) {
    // Errors about a message we sent (bad input, unknown provider, unknown query).
    const message = (event.error && event.error.message) || "The server refused the request.";
    if (event.type === "error" && current && current.phase !== "streaming") {
      if (current.phase === "resuming") failCurrent("The answer could not be resumed: " + message);
      else failCurrent(message);
    } else if (event.type === "error") {
      showError(message);
    }
    return;
  }
  if (!current) return;
  if (!current.queryId && current.phase === "starting") {
    current.queryId = event.query_id;
    current.turn.queryId = event.query_id;
    if (current.cancelPending) send({ type: "cancel", query_id: current.queryId });
  }
  if (event.query_id !== current.queryId) return;

  if (event.type === "cancel") {
    if (event.cancel_requested) setStatus("Stopping…");
    return;
  }
  if (event.event_id) {
    if (current.seen.has(event.event_id)) return; // replayed twice (resume racing a reconnect)
    current.seen.add(event.event_id);
    current.lastEventId = event.event_id;
  }
  current.phase = "streaming";
  handleEvent(event);
}

function handleEvent(event) {
  const current = state.current;
  const { turn, view } = current;
  switch (event.type) {
    case "node":
      setStatus(current.cancelPending ? "Stopping…" : "Working: " + event.node);
      break;
    case "chunk": {
      const content = event.content || "";
      turn.answer = (turn.answer || "") + content;
      scheduleAnswerRender(turn, view);
      announce(content, false);
      if (!current.cancelPending) setStatus("Writing the answer…");
      break;
    }
    case "final":
      applyFinal(turn, event);
      renderAnswer(turn, view, false);
      break;
    case "error": {
      const message = (event.error && event.error.message) || "The answer failed.";
      turn.error = message;
      showError(message);
      break;
    }
    case "done": {
      const cancelled = event.message === "Query cancelled" || turn.finalStatus === "cancelled";
      finishTurn(turn.error ? "failed" : cancelled ? "cancelled" : "completed");
      return; // finishTurn cleared the in-flight record
    }
    default:
      break;
  }
  saveInflight();
}

export function stop() {
  const current = state.current;
  if (!current) return;
  current.cancelPending = true;
  els.stop.disabled = true;
  els.question.focus();
  setStatus("Stopping…");
  if (current.queryId) send({ type: "cancel", query_id: current.queryId });
  saveInflight();
}
