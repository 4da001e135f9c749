/* The chat page: one websocket to /ws/chat/, answers streamed into the transcript.
 *
 * Reload-safe: the in-flight query's id, the last event id seen and the text so far are
 * kept in localStorage (keyed by this tab's session id, so tabs do not fight); on load the
 * page sends `resume` and the server replays only what was missed. Finished turns are
 * kept in sessionStorage so a reload shows the conversation of this tab.
 */
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("chat-config").textContent);
  const $ = (id) => document.getElementById(id);
  const els = {
    provider: $("provider"),
    providerNote: $("provider-note"),
    model: $("model"),
    webSearch: $("web-search"),
    useMemory: $("use-memory"),
    connection: $("connection"),
    transcript: $("transcript"),
    emptyHint: $("empty-hint"),
    error: $("error"),
    status: $("status"),
    composer: $("composer"),
    question: $("question"),
    attachment: $("attachment"),
    attachments: $("attachments"),
    send: $("send"),
    stop: $("stop"),
  };

  // ---------------------------------------------------------------- storage
  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "s-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
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
  const SESSION_KEY = "llmchat:session:" + cfg.userId;
  let sessionId = null;
  try {
    sessionId = sessionStorage.getItem(SESSION_KEY);
    if (!sessionId) {
      sessionId = newId();
      sessionStorage.setItem(SESSION_KEY, sessionId);
    }
  } catch (_err) {
    sessionId = newId();
  }
  const INFLIGHT_KEY = "llmchat:inflight:" + sessionId;
  const TRANSCRIPT_KEY = "llmchat:transcript:" + sessionId;
  const INFLIGHT_MAX_AGE_MS = 2 * 60 * 60 * 1000; // event logs are kept about an hour
  const TRANSCRIPT_MAX_TURNS = 50;

  function pruneOldInflight() {
    try {
      for (let i = localStorage.length - 1; i >= 0; i--) {
        const key = localStorage.key(i);
        if (!key || !key.startsWith("llmchat:inflight:") || key === INFLIGHT_KEY) continue;
        const value = storageGet(localStorage, key);
        if (!value || Date.now() - (value.savedAt || 0) > INFLIGHT_MAX_AGE_MS) {
          localStorage.removeItem(key);
        }
      }
    } catch (_err) {
      /* nothing to prune */
    }
  }

  // ---------------------------------------------------------------- helpers
  function safeUrl(value) {
    if (typeof value !== "string" || !value) return null;
    try {
      const url = new URL(value, window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_err) {
      return null;
    }
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children || []) if (child) node.appendChild(child);
    return node;
  }

  function showError(message) {
    els.error.textContent = message;
    els.error.hidden = !message;
  }

  function setStatus(message) {
    // Rewriting the same text would make screen readers announce it again on every chunk.
    if (els.status.textContent !== (message || "")) els.status.textContent = message || "";
  }

  function nearBottom() {
    const t = els.transcript;
    return t.scrollHeight - t.scrollTop - t.clientHeight < 80;
  }

  function scrollToEnd(force) {
    if (force || nearBottom()) els.transcript.scrollTop = els.transcript.scrollHeight;
  }

  function selectedMode() {
    const checked = document.querySelector('input[name="mode"]:checked');
    return checked ? checked.value : "chat";
  }

  function setMode(mode) {
    const radio = document.querySelector('input[name="mode"][value="' + mode + '"]');
    if (radio) radio.checked = true;
  }

  // ---------------------------------------------------------------- provider picker
  function updateProviderNote() {
    if (!els.provider) return;
    const note = (cfg.notes || {})[els.provider.value] || "";
    els.providerNote.textContent = note;
    els.providerNote.hidden = !note;
  }

  if (els.provider) {
    els.provider.addEventListener("change", () => {
      els.model.value = (cfg.defaultModels || {})[els.provider.value] || "";
      updateProviderNote();
    });
  }

  // ---------------------------------------------------------------- attachments
  let attachments = []; // [{name, dataUrl}]

  function renderAttachments() {
    els.attachments.replaceChildren();
    attachments.forEach((item, index) => {
      const remove = el("button", {
        type: "button",
        className: "link-button",
        "aria-label": "Remove " + item.name,
        text: "Remove",
      });
      remove.addEventListener("click", () => {
        attachments.splice(index, 1);
        renderAttachments();
        els.attachment.focus();
      });
      els.attachments.appendChild(
        el("li", {}, [
          el("img", { src: item.dataUrl, alt: "", className: "thumb" }),
          el("span", { text: item.name }),
          remove,
        ]),
      );
    });
  }

  function readAsDataUrl(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  els.attachment.addEventListener("change", async () => {
    const allowed = ["image/png", "image/jpeg", "image/gif", "image/webp"];
    const problems = [];
    for (const file of Array.from(els.attachment.files || [])) {
      if (attachments.length >= cfg.maxAttachments) {
        problems.push("At most " + cfg.maxAttachments + " images can be attached.");
        break;
      }
      if (!allowed.includes(file.type)) {
        problems.push(file.name + " is not a PNG, JPEG, GIF or WebP image.");
        continue;
      }
      if (file.size > cfg.maxFileSize) {
        problems.push(file.name + " is larger than " + Math.floor(cfg.maxFileSize / 1048576) + " MB.");
        continue;
      }
      try {
        attachments.push({ name: file.name, dataUrl: await readAsDataUrl(file) });
      } catch (_err) {
        problems.push(file.name + " could not be read.");
      }
    }
    els.attachment.value = "";
    renderAttachments();
    showError(problems.join(" "));
  });

  // ---------------------------------------------------------------- transcript
  let turns = storageGet(sessionStorage, TRANSCRIPT_KEY) || [];
  let current = null; // {turn, view, queryId, lastEventId, seen, phase, cancelPending}

  function saveTranscript() {
    storageSet(sessionStorage, TRANSCRIPT_KEY, turns.slice(-TRANSCRIPT_MAX_TURNS));
  }

  function saveInflight() {
    if (!current || !current.queryId) return;
    storageSet(localStorage, INFLIGHT_KEY, {
      queryId: current.queryId,
      lastEventId: current.lastEventId,
      turn: current.turn,
      cancelPending: current.cancelPending,
      savedAt: Date.now(),
    });
  }

  function renderTurn(turn) {
    els.emptyHint.hidden = true;
    const answerText = el("div", { className: "answer-text", text: turn.answer || "" });
    const answer = el("section", { className: "answer", "aria-label": "Answer" }, [answerText]);
    const attached = turn.attachments
      ? el("p", { className: "note", text: turn.attachments + " image(s) attached" })
      : null;
    const article = el("article", { className: "turn" }, [
      el("div", { className: "question" }, [
        el("span", { className: "visually-hidden", text: "You asked: " }),
        el("p", { text: turn.question }),
        attached,
      ]),
      answer,
    ]);
    els.transcript.appendChild(article);
    const view = { article, answer, answerText, extras: null };
    renderExtras(turn, view);
    return view;
  }

  function renderExtras(turn, view) {
    if (view.extras) view.extras.remove();
    const extras = el("div", { className: "extras" });
    view.extras = extras;
    view.answer.appendChild(extras);

    if (turn.error) {
      extras.appendChild(el("p", { className: "answer-error", text: "Error: " + turn.error }));
    }
    if (turn.status === "cancelled") {
      extras.appendChild(el("p", { className: "note stopped", text: "Stopped: the answer above is partial." }));
    }

    if (turn.options && turn.options.length) {
      const group = el("div", { className: "options", role: "group", "aria-label": "Choose an option" });
      for (const option of turn.options) {
        const button = el("button", { type: "button", className: "option", text: String(option) });
        button.disabled = !!turn.optionChosen || isGenerating();
        button.addEventListener("click", () => chooseOption(turn, String(option)));
        group.appendChild(button);
      }
      extras.appendChild(group);
    }

    const cards = (turn.productCards || []).filter((card) => card && card.title);
    if (cards.length) {
      const list = el("ul", { className: "cards", "aria-label": "Products" });
      for (const card of cards) {
        const href = safeUrl(card.url);
        const image = safeUrl(card.image);
        const title = href
          ? el("a", { href, target: "_blank", rel: "noopener noreferrer", text: card.title })
          : el("span", { text: card.title });
        list.appendChild(
          el("li", { className: "card" }, [
            image ? productImage(image, card.title) : null,
            el("h3", {}, [title]),
            card.price ? el("p", { className: "price", text: String(card.price) }) : null,
            card.source ? el("p", { className: "source", text: String(card.source) }) : null,
            card.rating ? el("p", { className: "rating", text: "Rating: " + card.rating }) : null,
          ]),
        );
      }
      extras.appendChild(list);
    }

    const citations = (turn.citations || []).filter((c) => c && safeUrl(c.url));
    if (citations.length) {
      const list = el("ol", { className: "citations" });
      for (const citation of citations) {
        list.appendChild(
          el("li", {}, [
            el("a", {
              href: safeUrl(citation.url),
              target: "_blank",
              rel: "noopener noreferrer",
              text: citation.title || citation.url,
            }),
          ]),
        );
      }
      extras.appendChild(el("div", { className: "sources" }, [el("h3", { text: "Sources" }), list]));
    }

    if (turn.meta) extras.appendChild(el("p", { className: "meta note", text: turn.meta }));
  }

  function productImage(src, title) {
    const img = el("img", { src, alt: title, loading: "lazy", referrerpolicy: "no-referrer" });
    // A shop's image that fails to load should not leave a broken box behind.
    img.addEventListener("error", () => img.replaceWith(el("div", { className: "no-image", "aria-hidden": "true" })));
    return img;
  }

  function describe(final, turn) {
    const parts = [turn.provider && turn.model ? turn.provider + " / " + turn.model : turn.provider];
    const usage = final.usage || {};
    if (usage.total_tokens) parts.push(usage.total_tokens + " tokens");
    const latency = final.latency || {};
    if (latency.total_ms) {
      const ms = latency.total_ms;
      parts.push(ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(1) + " s");
    }
    const note = final.metadata && final.metadata.model_note;
    if (note) parts.push(note);
    return parts.filter(Boolean).join(" · ");
  }

  // ---------------------------------------------------------------- generating state
  function isGenerating() {
    return current !== null;
  }

  function setGenerating(on) {
    els.send.disabled = on || !els.provider;
    els.stop.hidden = !on;
    els.stop.disabled = false;
    for (const button of els.transcript.querySelectorAll("button.option")) {
      if (on) button.disabled = true;
    }
  }

  function startTurn(turn, state) {
    const view = renderTurn(turn);
    view.answer.setAttribute("aria-busy", "true");
    view.article.classList.add("streaming");
    current = Object.assign(
      { turn, view, queryId: null, lastEventId: null, seen: new Set(), cancelPending: false },
      state,
    );
    setGenerating(true);
    scrollToEnd(true);
  }

  function finishTurn(status) {
    if (!current) return;
    const { turn, view } = current;
    turn.status = status;
    view.answer.removeAttribute("aria-busy");
    view.article.classList.remove("streaming");
    renderExtras(turn, view);
    turns.push(turn);
    saveTranscript();
    storageSet(localStorage, INFLIGHT_KEY, null);
    const stopHadFocus = document.activeElement === els.stop;
    current = null;
    setGenerating(false);
    renderAllOptionsEnabled();
    if (stopHadFocus) els.question.focus();
    setStatus(
      status === "cancelled" ? "Stopped." : status === "failed" ? "The answer failed." : "Answer complete.",
    );
    scrollToEnd(false);
  }

  function renderAllOptionsEnabled() {
    // Only the latest turn's options can still be answered.
    const last = turns[turns.length - 1];
    for (const button of els.transcript.querySelectorAll("button.option")) button.disabled = true;
    if (last && last.options && last.options.length && !last.optionChosen) {
      const articles = els.transcript.querySelectorAll("article.turn");
      const article = articles[articles.length - 1];
      if (article) for (const button of article.querySelectorAll("button.option")) button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- websocket
  let ws = null;
  let everOpened = false;
  let failures = 0;
  let reconnectTimer = null;
  let stopped = false; // signed out: no more reconnects

  function setConnection(state, text) {
    els.connection.dataset.state = state;
    els.connection.textContent = text;
  }

  function wsUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + cfg.wsPath;
  }

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(message));
      return true;
    }
    return false;
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
      if (current && current.queryId) {
        current.phase = "resuming";
        send({ type: "resume", query_id: current.queryId, last_event_id: current.lastEventId });
        if (current.cancelPending) send({ type: "cancel", query_id: current.queryId });
        setStatus("Resuming the answer…");
      } else if (current && current.phase === "starting") {
        // The connection dropped before the server named the query: it cannot be followed.
        failCurrent("The connection dropped before the answer started. Please ask again.");
      }
    });
    socket.addEventListener("message", (event) => onMessage(event.data));
    socket.addEventListener("close", () => {
      if (ws !== socket) return;
      ws = null;
      if (!opened) failures += 1;
      setConnection("closed", "disconnected, retrying…");
      if (current) setStatus("Connection lost; the answer keeps being written and will resume.");
      if (failures >= 2) checkSignedIn();
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (stopped || reconnectTimer) return;
    const delay = Math.min(10000, 500 * Math.pow(2, Math.min(failures, 5)));
    reconnectTimer = window.setTimeout(connect, delay);
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

  function failCurrent(message) {
    if (!current) return;
    current.turn.error = message;
    showError(message);
    finishTurn("failed");
  }

  function onMessage(data) {
    let event;
    try {
      event = JSON.parse(data);
    } catch (_err) {
      return;
    }
    if (!event || typeof event !== "object") return;

    if (!event.query_id) {
      // Errors about a message we sent (bad input, unknown provider, unknown query).
      const message = (event.error && event.error.message) || "The server refused the request.";
      if (event.type === "error" && current && current.phase !== "streaming") {
        if (current.phase === "resuming") {
          failCurrent("The answer could not be resumed: " + message);
        } else {
          failCurrent(message);
        }
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
    const { turn, view } = current;
    switch (event.type) {
      case "node":
        setStatus(current.cancelPending ? "Stopping…" : "Working: " + event.node);
        break;
      case "chunk": {
        const follow = nearBottom();
        turn.answer = (turn.answer || "") + (event.content || "");
        view.answerText.textContent = turn.answer;
        if (!current.cancelPending) setStatus("Writing the answer…");
        scrollToEnd(follow);
        break;
      }
      case "final":
        // The stored answer is authoritative (a replay after the log expired has no chunks).
        if (typeof event.response === "string" && event.response) turn.answer = event.response;
        view.answerText.textContent = turn.answer || "";
        turn.options = Array.isArray(event.options) ? event.options : [];
        turn.productCards = Array.isArray(event.product_cards) ? event.product_cards : [];
        turn.citations = Array.isArray(event.citations) ? event.citations : [];
        turn.meta = describe(event, turn);
        turn.finalStatus = event.status;
        renderExtras(turn, view);
        break;
      case "error": {
        const message = (event.error && event.error.message) || "The answer failed.";
        turn.error = message;
        showError(message);
        renderExtras(turn, view);
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

  // ---------------------------------------------------------------- actions
  function sendQuery({ query, selectedOption, mode }) {
    showError("");
    if (!els.provider) return;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      showError("Not connected to the server yet; try again in a moment.");
      return false;
    }
    const turn = {
      question: query,
      answer: "",
      attachments: attachments.length,
      provider: els.provider.value,
      model: els.model.value.trim(),
      mode,
      status: "streaming",
    };
    const message = {
      type: "query",
      user_id: cfg.userId,
      session_id: sessionId,
      query,
      model_provider: turn.provider,
      model_name: turn.model,
      mode,
      web_search: els.webSearch.checked,
      use_memory: els.useMemory.checked,
      attachments: attachments.map((a) => a.dataUrl),
      selected_option: selectedOption || null,
    };
    startTurn(turn, { phase: "starting" });
    send(message);
    attachments = [];
    renderAttachments();
    setStatus("Sending…");
    return true;
  }

  function chooseOption(turn, option) {
    if (isGenerating()) return;
    setMode("shopping");
    // Only a sent choice is final: if the socket is down, the buttons stay usable.
    if (!sendQuery({ query: option, selectedOption: option, mode: "shopping" })) return;
    turn.optionChosen = option;
    saveTranscript();
  }

  function stop() {
    if (!current) return;
    current.cancelPending = true;
    els.stop.disabled = true;
    els.question.focus();
    setStatus("Stopping…");
    if (current.queryId) send({ type: "cancel", query_id: current.queryId });
    saveInflight();
  }

  els.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    if (isGenerating()) return;
    const query = els.question.value.trim();
    if (!query) {
      showError("Type a question first.");
      els.question.focus();
      return;
    }
    if (sendQuery({ query, mode: selectedMode() })) els.question.value = "";
  });

  els.question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      els.composer.requestSubmit();
    } else if (event.key === "Escape" && isGenerating()) {
      event.preventDefault();
      stop();
    }
  });

  els.stop.addEventListener("click", stop);

  const logout = document.querySelector('form[action$="/logout/"]');
  if (logout) {
    logout.addEventListener("submit", () => {
      stopped = true; // no reconnect attempts while the page unloads
      storageSet(localStorage, INFLIGHT_KEY, null);
      try {
        for (const key of Object.keys(sessionStorage)) {
          if (key.startsWith("llmchat:")) sessionStorage.removeItem(key);
        }
      } catch (_err) {
        /* nothing kept */
      }
    });
  }

  // ---------------------------------------------------------------- start
  pruneOldInflight();
  for (const turn of turns) renderTurn(turn);
  renderAllOptionsEnabled();
  const inflight = storageGet(localStorage, INFLIGHT_KEY);
  if (inflight && inflight.queryId && inflight.turn) {
    startTurn(inflight.turn, {
      phase: "resuming",
      queryId: inflight.queryId,
      lastEventId: inflight.lastEventId || null,
      cancelPending: !!inflight.cancelPending,
    });
    if (current.cancelPending) els.stop.disabled = true;
    setStatus("Resuming the answer…");
  }
  updateProviderNote();
  scrollToEnd(true);
  connect();
})();
