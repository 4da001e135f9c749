/* The chat page: conversations (sessions) from /chat/api/, answers over one websocket to
 * /ws/chat/, rendered as sanitised Markdown. This entry module wires the parts together
 * and starts the page; the parts are the native ES modules under js/ (no bundler), and
 * what they share lives in js/state.js.
 *
 * The server keeps every conversation: the sidebar lists them and opening one reads its
 * turns back. Reload-safe: the in-flight query's id, the last event id seen and the text
 * so far are kept in localStorage (js/storage.js); on load the page sends `resume` and
 * the server replays only what was missed.
 */

import { onMessage, resumeAfterConnect, startTurn } from "./js/answer.js";
import { leaveConversation } from "./js/api.js";
import { initAnswerSettings } from "./js/answer-settings.js";
import { chooseOption, initComposer, regenerateTurn } from "./js/ask.js";
import { initAttachments } from "./js/attachments.js";
import { initConversations, newConversation, openConversation, refreshConversations } from "./js/conversations.js";
import { initDrawer } from "./js/drawer.js";
import { refreshLimits } from "./js/limits.js";
import { initManage } from "./js/manage.js";
import { initFilesPanel } from "./js/files-panel.js";
import { initPresets } from "./js/presets.js";
import { els, scrollToEnd, setStatus } from "./js/page.js";
import { initSettings, updateProviderNote } from "./js/settings.js";
import { initShortcuts } from "./js/shortcuts.js";
import { connectSocket, stopReconnecting } from "./js/socket.js";
import { state } from "./js/state.js";
import { forgetEverything, loadInflight, pruneOldInflight, rememberedConversation } from "./js/storage.js";
import { setTurnActions } from "./js/transcript.js";

function initLeaving() {
  window.addEventListener("pagehide", () => {
    if (state.conversation.started) leaveConversation(state.conversation.id);
  });
  const logout = document.querySelector('form[action$="/logout/"]');
  if (logout) {
    logout.addEventListener("submit", () => {
      stopReconnecting();
      forgetEverything();
    });
  }
}

async function start() {
  // On a phone the settings would push the chat a screen down: they start folded.
  const settingsPanel = document.querySelector(".settings-panel");
  if (settingsPanel && window.matchMedia("(max-width: 50rem)").matches) settingsPanel.open = false;
  pruneOldInflight();
  updateProviderNote();
  const id = rememberedConversation();
  const inflight = id ? loadInflight(id) : null;
  const resuming = inflight && inflight.queryId && inflight.turn ? inflight : null;
  await refreshConversations();
  if (id) await openConversation(id, { skipQueryId: resuming && resuming.queryId });
  else newConversation();
  if (resuming) {
    startTurn(resuming.turn, {
      phase: "resuming",
      queryId: resuming.queryId,
      lastEventId: resuming.lastEventId || null,
      cancelPending: !!resuming.cancelPending,
    });
    if (state.current.cancelPending) els.stop.disabled = true;
    setStatus("Resuming the answer…");
  }
  scrollToEnd(true);
  connectSocket({ open: resumeAfterConnect, message: onMessage });
  refreshLimits();
}

setTurnActions({ choose: chooseOption, regenerate: regenerateTurn });
initSettings();
initAttachments();
initComposer();
initConversations();
initManage();
initPresets();
initFilesPanel();
initAnswerSettings();
initDrawer();
initShortcuts();
initLeaving();
start();
