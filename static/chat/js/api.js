/* The page's JSON API (/chat/api/), signed in by the session cookie and the CSRF token. */

import { cfg, csrfToken } from "./page.js";
import { state } from "./state.js";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || "The server refused the request (" + status + ").");
    this.status = status;
    this.code = body && body.error && body.error.code;
  }
}

export async function api(method, path, body) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
  };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(cfg.apiBase + path, init);
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export function browserEnvironment() {
  const width = window.innerWidth || 0;
  return {
    environment: {
      device: width && width < 768 ? "mobile" : "desktop",
      viewport: { width, height: window.innerHeight || 0 },
    },
    language: (navigator.language || "").slice(0, 35),
    timezone: (Intl.DateTimeFormat().resolvedOptions().timeZone || "").slice(0, 64),
  };
}

export async function ensureStarted() {
  const conversation = state.conversation;
  if (conversation.started) return;
  await api("POST", "conversations", { session_id: conversation.id, ...browserEnvironment() });
  conversation.started = true;
}

export function recordActivity(type, data) {
  if (!state.conversation.started) return;
  // Analytics only: a failure (the session already ended) must not disturb the chat.
  api("POST", "conversations/" + encodeURIComponent(state.conversation.id) + "/activity", {
    type,
    t: Date.now(),
    data: data || {},
  }).catch(() => {});
}

export function leaveConversation(id) {
  // The page may be going away: a beacon is delivered even after it is gone.
  if (!id || !navigator.sendBeacon) return;
  const form = new FormData();
  form.append("csrfmiddlewaretoken", csrfToken);
  navigator.sendBeacon(cfg.apiBase + "conversations/" + encodeURIComponent(id) + "/leave", form);
}
