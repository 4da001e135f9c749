/* Keyboard shortcuts, listed on the page (#shortcuts) and in the README: new
 * conversation (Ctrl+Shift+O), search (Ctrl+K, or / outside a text field), stop
 * (Escape), copy the last answer (Ctrl+Shift+C). Cmd works for Ctrl on a Mac. */

import { stop } from "./answer.js";
import { newConversation } from "./conversations.js";
import { closeDrawer, isDrawerOpen, openDrawer } from "./drawer.js";
import { els, setStatus } from "./page.js";
import { isGenerating, state } from "./state.js";

function typingInField(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

async function copyLastAnswer() {
  const finished = state.conversation.turns.filter((turn) => turn.answer);
  const last = finished[finished.length - 1];
  if (!last) {
    setStatus("There is no answer to copy yet.");
    return;
  }
  try {
    await navigator.clipboard.writeText(last.answer);
    setStatus("Copied the last answer.");
  } catch (_err) {
    setStatus("The browser did not allow copying; select the text instead.");
  }
}

function keydown(event) {
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  if (mod && event.shiftKey && !event.altKey && key === "o") {
    event.preventDefault();
    closeDrawer();
    newConversation();
  } else if ((mod && !event.shiftKey && !event.altKey && key === "k") || (key === "/" && !mod && !typingInField(event.target))) {
    event.preventDefault();
    openDrawer(els.search);
    els.search.select();
  } else if (mod && event.shiftKey && !event.altKey && key === "c") {
    event.preventDefault();
    copyLastAnswer();
  } else if (event.key === "Escape" && isGenerating() && !isDrawerOpen() && !event.defaultPrevented) {
    event.preventDefault();
    stop();
  }
}

export function initShortcuts() {
  document.addEventListener("keydown", keydown);
  document.getElementById("shortcuts-link").addEventListener("click", (event) => {
    event.preventDefault();
    els.shortcuts.open = true;
    els.shortcuts.querySelector("summary").focus();
  });
}
