/* The one websocket to /ws/chat/: connect, reconnect with backoff, notice a sign-out.
 *
 * It carries messages and nothing more: what to do when it opens and with each message
 * is the answer's business (answer.js), handed in by connectSocket.
 */

import { cfg, els, setStatus, showError } from "./page.js";
import { state } from "./state.js";

let ws = null;
let everOpened = false;
let failures = 0;
let reconnectTimer = null;
let stopped = false; // signed out: no more reconnects
let handlers = { open: () => {}, message: () => {} };

function setConnection(connection, text) {
  els.connection.dataset.state = connection;
  els.connection.textContent = text;
}

function wsUrl() {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return scheme + "//" + window.location.host + cfg.wsPath;
}

export function isOpen() {
  return !!ws && ws.readyState === WebSocket.OPEN;
}

export function send(message) {
  if (isOpen()) {
    ws.send(JSON.stringify(message));
    return true;
  }
  return false;
}

/* on.open(): the socket is (again) open; on.message(data): a frame arrived. */
export function connectSocket(on) {
  handlers = on;
  connect();
}

/* The page is being left (signing out): no reconnect attempts while it unloads. */
export function stopReconnecting() {
  stopped = true;
}

function connect() {
  if (stopped) return;
  reconnectTimer = null;
  setConnection("connecting", everOpened ? "reconnecting…" : "connecting…");
  let socket;
  try {
    socket = new WebSocket(wsUrl());
  } catch (_err) {
    scheduleReconnect();
    return;
  }
  ws = socket;
  let opened = false;
  socket.addEventListener("open", () => {
    opened = true;
    everOpened = true;
    failures = 0;
    setConnection("open", "connected");
    handlers.open();
  });
  socket.addEventListener("message", (event) => handlers.message(event.data));
  socket.addEventListener("close", (event) => {
    if (ws !== socket) return;
    ws = null;
    if (event.code === 4401) {
      // Signed out or the session ended (the server re-checks it): reconnecting cannot help.
      stopped = true;
      setConnection("closed", "signed out");
      showError("You have been signed out. Reload the page to sign in again.");
      return;
    }
    if (!opened) failures += 1;
    setConnection("closed", "disconnected, retrying…");
    if (state.current) setStatus("Connection lost; the answer keeps being written and will resume.");
    if (failures >= 2) checkSignedIn();
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  if (stopped || reconnectTimer) return;
  // Exponential backoff with jitter, so many tabs do not reconnect in step.
  const base = Math.min(10000, 500 * Math.pow(2, Math.min(failures, 5)));
  reconnectTimer = window.setTimeout(connect, base * (0.8 + Math.random() * 0.4));
}

async function checkSignedIn() {
  // A refused websocket handshake looks like any other drop; ask the page itself.
  try {
    const response = await fetch(window.location.pathname, { redirect: "manual", cache: "no-store" });
    if (response.type === "opaqueredirect" || response.status === 302) {
      stopped = true;
      if (reconnectTimer) window.clearTimeout(reconnectTimer);
      setConnection("closed", "signed out");
      showError("You have been signed out. Reload the page to sign in again.");
    }
  } catch (_err) {
    /* the server is unreachable: keep retrying */
  }
}
