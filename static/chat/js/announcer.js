/* Polite announcements: new answer text is read out in phrases, not token by token, and
 * only once (#announcer is the live region; the transcript is not). */

import { el, els } from "./page.js";

let pendingSpeech = "";
let speechTimer = null;

export function announce(text, flush) {
  pendingSpeech += text;
  const sentence = /[.!?:]\s*$/.test(pendingSpeech) || pendingSpeech.length > 160;
  if (flush || sentence) {
    speakNow();
  } else if (!speechTimer) {
    speechTimer = window.setTimeout(speakNow, 1500);
  }
}

export function speakNow() {
  if (speechTimer) window.clearTimeout(speechTimer);
  speechTimer = null;
  const text = pendingSpeech.trim();
  pendingSpeech = "";
  if (!text) return;
  els.announcer.appendChild(el("span", { text: text + " " }));
  while (els.announcer.childNodes.length > 20) els.announcer.firstChild.remove();
}

export function resetAnnouncer() {
  pendingSpeech = "";
  if (speechTimer) window.clearTimeout(speechTimer);
  speechTimer = null;
  els.announcer.replaceChildren();
}
