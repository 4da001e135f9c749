/* What the browser keeps between page loads. Reload-safe: the in-flight query's id, the
 * last event id seen and the text so far are kept in localStorage (keyed by the
 * conversation id, so tabs do not fight); the open conversation's id in sessionStorage. */

import { cfg } from "./page.js";
import { state } from "./state.js";

export function newId() {
  if (window.crypto && crypto.randomUUID) return "c-" + crypto.randomUUID();
  return "c-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
}

function storageGet(store, key) {
  try {
    const raw = store.getItem(key);
    return raw ? JSON.parse(raw) : null;
  } catch (_err) {
    return null; // private mode, quota or a corrupt value: behave as if nothing was kept
  }
}

function storageSet(store, key, value) {
  try {
    if (value === null) store.removeItem(key);
    else store.setItem(key, JSON.stringify(value));
  } catch (_err) {
    /* storage full or disabled: the page still works, it just cannot resume */
  }
}

// Keyed by user too: whoever signs in next in this tab must not see the last one's chat.
const CURRENT_KEY = "llmchat:session:" + cfg.userId;
const INFLIGHT_MAX_AGE_MS = 2 * 60 * 60 * 1000; // event logs are kept about an hour
const inflightKey = (id) => "llmchat:inflight:" + id;

export function rememberCurrent() {
  try {
    sessionStorage.setItem(CURRENT_KEY, state.conversation.id);
  } catch (_err) {
    /* not kept: a reload opens a new conversation */
  }
}

/* The id of the conversation this tab had open, or null. */
export function rememberedConversation() {
  try {
    return sessionStorage.getItem(CURRENT_KEY);
  } catch (_err) {
    return null;
  }
}

export function pruneOldInflight() {
  try {
    for (let i = localStorage.length - 1; i >= 0; i--) {
      const key = localStorage.key(i);
      if (!key || !key.startsWith("llmchat:inflight:")) continue;
      const value = storageGet(localStorage, key);
      if (!value || Date.now() - (value.savedAt || 0) > INFLIGHT_MAX_AGE_MS) {
        localStorage.removeItem(key);
      }
    }
  } catch (_err) {
    /* nothing to prune */
  }
}

export function saveInflight() {
  const current = state.current;
  if (!current || !current.queryId) return;
  storageSet(localStorage, inflightKey(state.conversation.id), {
    queryId: current.queryId,
    lastEventId: current.lastEventId,
    turn: current.turn,
    cancelPending: current.cancelPending,
    savedAt: Date.now(),
  });
}

export function loadInflight(id) {
  return storageGet(localStorage, inflightKey(id));
}

export function forgetInflight(id) {
  storageSet(localStorage, inflightKey(id), null);
}

/* Signing out: nothing of this user's chat stays in the tab. */
export function forgetEverything() {
  if (state.conversation.id) forgetInflight(state.conversation.id);
  try {
    for (const key of Object.keys(sessionStorage)) {
      if (key.startsWith("llmchat:")) sessionStorage.removeItem(key);
    }
  } catch (_err) {
    /* nothing kept */
  }
}
