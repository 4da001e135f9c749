/* On a phone the conversations and settings are a drawer over the chat, so the chat (and
 * the answer) starts at the top of the screen. Closed, the drawer is inert: neither
 * focus nor a screen reader lands in what is off-screen. On wider screens it is the
 * ordinary left column and this module does nothing. */

import { els } from "./page.js";

const PHONE = window.matchMedia("(max-width: 50rem)");

export function isDrawerOpen() {
  return els.sidebar.classList.contains("open");
}

function apply(open) {
  const phone = PHONE.matches;
  els.sidebar.classList.toggle("open", phone && open);
  els.sidebar.inert = phone && !open;
  els.drawerBackdrop.hidden = !(phone && open);
  els.drawerToggle.setAttribute("aria-expanded", phone && open ? "true" : "false");
}

export function openDrawer(focusTarget) {
  if (!PHONE.matches) {
    if (focusTarget) focusTarget.focus();
    return;
  }
  apply(true);
  (focusTarget || els.newConversation).focus();
}

export function closeDrawer({ restoreFocus } = {}) {
  if (!isDrawerOpen()) return;
  apply(false);
  if (restoreFocus) els.drawerToggle.focus();
}

export function initDrawer() {
  apply(false);
  PHONE.addEventListener("change", () => apply(false));
  els.drawerToggle.addEventListener("click", () => (isDrawerOpen() ? closeDrawer({ restoreFocus: true }) : openDrawer()));
  els.drawerBackdrop.addEventListener("click", () => closeDrawer({ restoreFocus: true }));
  els.sidebar.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && isDrawerOpen() && !event.defaultPrevented) {
      event.preventDefault();
      closeDrawer({ restoreFocus: true });
    }
  });
  // Opening or starting a conversation is where the user wanted to go: the drawer closes.
  els.conversationList.addEventListener("click", (event) => {
    if (event.target.closest("button.open")) closeDrawer();
  });
  els.newConversation.addEventListener("click", () => closeDrawer());
}
