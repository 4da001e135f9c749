/* The chat page: conversations (sessions) from /chat/api/, answers over one websocket to
 * /ws/chat/, rendered as sanitised Markdown (markdown.js).
 *
 * The server keeps every conversation: the sidebar lists them and opening one reads its
 * turns back. Reload-safe: the in-flight query's id, the last event id seen and the text
 * so far are kept in localStorage (keyed by the conversation id, so tabs do not fight);
 * on load the page sends `resume` and the server replays only what was missed.
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
    useDocuments: $("use-documents"),
    connection: $("connection"),
    title: $("conversation-title"),
    transcript: $("transcript"),
    emptyHint: $("empty-hint"),
    announcer: $("announcer"),
    error: $("error"),
    status: $("status"),
    composer: $("composer"),
    question: $("question"),
    attachment: $("attachment"),
    attachments: $("attachments"),
    send: $("send"),
    stop: $("stop"),
    newConversation: $("new-conversation"),
    conversationList: $("conversation-list"),
    conversationsEmpty: $("conversations-empty"),
    details: $("details"),
    limits: $("limits"),
  };
  const csrfInput = document.querySelector('input[name="csrfmiddlewaretoken"]');
  const csrfToken = csrfInput ? csrfInput.value : "";

  // ---------------------------------------------------------------- storage
  function newId() {
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

  let conversation = {
    id: null,
    started: false, // the server has the session (it is started before the first question)
    turns: [],
  };

  function rememberCurrent() {
    try {
      sessionStorage.setItem(CURRENT_KEY, conversation.id);
    } catch (_err) {
      /* not kept: a reload opens a new conversation */
    }
  }

  function pruneOldInflight() {
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

  // ---------------------------------------------------------------- the page's JSON API
  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || "The server refused the request (" + status + ").");
      this.status = status;
      this.code = body && body.error && body.error.code;
    }
  }

  async function api(method, path, body) {
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

  function browserEnvironment() {
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

  async function ensureStarted() {
    if (conversation.started) return;
    await api("POST", "conversations", { session_id: conversation.id, ...browserEnvironment() });
    conversation.started = true;
  }

  function recordActivity(type, data) {
    if (!conversation.started) return;
    // Analytics only: a failure (the session already ended) must not disturb the chat.
    api("POST", "conversations/" + encodeURIComponent(conversation.id) + "/activity", {
      type,
      t: Date.now(),
      data: data || {},
    }).catch(() => {});
  }

  function leaveConversation(id) {
    // The page may be going away: a beacon is delivered even after it is gone.
    if (!id || !navigator.sendBeacon) return;
    const form = new FormData();
    form.append("csrfmiddlewaretoken", csrfToken);
    navigator.sendBeacon(cfg.apiBase + "conversations/" + encodeURIComponent(id) + "/leave", form);
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
    els.error.textContent = message || "";
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

  async function copyText(text, button) {
    const label = button.textContent;
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
      setStatus("Copied to the clipboard.");
    } catch (_err) {
      button.textContent = "Copy failed";
      setStatus("The browser did not allow copying; select the text instead.");
    }
    window.setTimeout(() => (button.textContent = label), 1500);
  }

  // ---------------------------------------------------------------- polite announcements
  // New answer text is read out in phrases, not token by token, and only once.
  let pendingSpeech = "";
  let speechTimer = null;

  function announce(text, flush) {
    pendingSpeech += text;
    const sentence = /[.!?:]\s*$/.test(pendingSpeech) || pendingSpeech.length > 160;
    if (flush || sentence) {
      speakNow();
    } else if (!speechTimer) {
      speechTimer = window.setTimeout(speakNow, 1500);
    }
  }

  function speakNow() {
    if (speechTimer) window.clearTimeout(speechTimer);
    speechTimer = null;
    const text = pendingSpeech.trim();
    pendingSpeech = "";
    if (!text) return;
    els.announcer.appendChild(el("span", { text: text + " " }));
    while (els.announcer.childNodes.length > 20) els.announcer.firstChild.remove();
  }

  function resetAnnouncer() {
    pendingSpeech = "";
    if (speechTimer) window.clearTimeout(speechTimer);
    speechTimer = null;
    els.announcer.replaceChildren();
  }

  // ---------------------------------------------------------------- provider picker
  function updateProviderNote() {
    if (!els.provider) return;
    const note = (cfg.notes || {})[els.provider.value] || "";
    els.providerNote.textContent = note;
    els.providerNote.hidden = !note;
  }

  // Until the user picks a provider or model, questions leave both open: the server then
  // answers with its default, or with the model of the experiment variant this
  // conversation was assigned (a request's own choice always wins over an experiment).
  let modelChosen = false;

  if (els.provider) {
    els.provider.addEventListener("change", () => {
      els.model.value = (cfg.defaultModels || {})[els.provider.value] || "";
      modelChosen = true;
      updateProviderNote();
    });
    els.model.addEventListener("input", () => {
      modelChosen = true;
    });
  }

  // ---------------------------------------------------------------- attachments (uploads)
  const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
  const INGESTING = ["pending", "processing"];
  const POLL_MS = 1500;
  let attachments = []; // [{key, name, kind: image|document, state, fileId, ingestion, preview}]

  function attachmentLine(item) {
    if (item.state === "uploading") return "uploading…";
    if (item.state === "failed") return "failed: " + item.error;
    if (item.kind === "image") return "ready";
    const ingestion = item.ingestion;
    if (!ingestion || !ingestion.status) return "uploaded";
    if (ingestion.status === "failed") return "could not be read: " + (ingestion.error || "unknown error");
    if (ingestion.status === "ready") {
      const parts = [];
      const count = (n, word) => n + " " + word + (n === 1 ? "" : "s");
      if (ingestion.pages) parts.push(count(ingestion.pages, "page"));
      if (ingestion.chunks) parts.push(count(ingestion.chunks, "passage"));
      return "ready" + (parts.length ? " (" + parts.join(", ") + ")" : "");
    }
    const progress = typeof ingestion.progress === "number" ? " " + Math.round(ingestion.progress * (ingestion.progress <= 1 ? 100 : 1)) + "%" : "";
    return "reading the document…" + progress;
  }

  function renderAttachments() {
    els.attachments.replaceChildren();
    for (const item of attachments) {
      const remove = el("button", {
        type: "button",
        className: "link-button",
        "aria-label": "Remove " + item.name,
        text: "Remove",
      });
      remove.addEventListener("click", () => {
        attachments = attachments.filter((a) => a !== item);
        renderAttachments();
        els.attachment.focus();
      });
      const progress = item.kind === "document" && item.ingestion && INGESTING.includes(item.ingestion.status);
      els.attachments.appendChild(
        el("li", { "data-state": item.state, "data-kind": item.kind }, [
          item.preview
            ? el("img", { src: item.preview, alt: "", className: "thumb" })
            : el("span", { className: "doc-icon", "aria-hidden": "true", text: (item.name.split(".").pop() || "doc").slice(0, 4) }),
          el("span", { className: "attachment-name", text: item.name }),
          el("span", { className: "attachment-state note", text: attachmentLine(item) }),
          progress && typeof item.ingestion.progress === "number"
            ? el("progress", {
                max: "1",
                value: String(item.ingestion.progress <= 1 ? item.ingestion.progress : item.ingestion.progress / 100),
                "aria-label": "Reading " + item.name,
              })
            : null,
          remove,
        ]),
      );
    }
  }

  async function upload(item, file) {
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const stored = await api("POST", "files", form);
      item.fileId = stored.file_id;
      item.ingestion = stored.ingestion || null;
      item.state = "ready";
      setStatus(item.name + " uploaded.");
      if (item.kind === "document") pollIngestion(item);
    } catch (err) {
      item.state = "failed";
      item.error = err.message;
      setStatus(item.name + " was not uploaded: " + err.message);
    }
    renderAttachments();
  }

  async function pollIngestion(item) {
    // The files API reports `ingestion` once documents are indexed; without it, an
    // uploaded document is simply "uploaded" and nothing is polled.
    while (attachments.includes(item) && item.ingestion && INGESTING.includes(item.ingestion.status)) {
      await new Promise((resolve) => window.setTimeout(resolve, POLL_MS));
      try {
        const fresh = await api("GET", "files/" + encodeURIComponent(item.fileId));
        item.ingestion = fresh.ingestion || null;
      } catch (_err) {
        /* a blip: ask again next time */
      }
      renderAttachments();
    }
    // The list itself is not a live region (it is redrawn on every poll): say the outcome once.
    if (attachments.includes(item) && item.ingestion) setStatus(item.name + ": " + attachmentLine(item) + ".");
  }

  els.attachment.addEventListener("change", () => {
    const problems = [];
    for (const file of Array.from(els.attachment.files || [])) {
      const kind = IMAGE_TYPES.includes(file.type) ? "image" : "document";
      if (kind === "image" && attachments.filter((a) => a.kind === "image").length >= cfg.maxAttachments) {
        problems.push("At most " + cfg.maxAttachments + " images can be attached.");
        continue;
      }
      if (kind === "document" && attachments.filter((a) => a.kind === "document").length >= cfg.maxDocuments) {
        problems.push("At most " + cfg.maxDocuments + " documents can be attached.");
        continue;
      }
      if (file.size > cfg.maxFileSize) {
        problems.push(file.name + " is larger than " + Math.floor(cfg.maxFileSize / 1048576) + " MB.");
        continue;
      }
      const item = {
        key: newId(),
        name: file.name,
        kind,
        state: "uploading",
        fileId: null,
        ingestion: null,
        preview: kind === "image" ? URL.createObjectURL(file) : null,
      };
      attachments.push(item);
      upload(item, file);
    }
    els.attachment.value = "";
    renderAttachments();
    showError(problems.join(" "));
  });

  function attachmentsUploading() {
    return attachments.filter((a) => a.state === "uploading");
  }

  function documentsBeingRead() {
    return attachments.filter((a) => a.kind === "document" && a.ingestion && INGESTING.includes(a.ingestion.status));
  }

  // ---------------------------------------------------------------- transcript
  let current = null; // {turn, view, queryId, lastEventId, seen, phase, cancelPending}

  function saveInflight() {
    if (!current || !current.queryId) return;
    storageSet(localStorage, inflightKey(conversation.id), {
      queryId: current.queryId,
      lastEventId: current.lastEventId,
      turn: current.turn,
      cancelPending: current.cancelPending,
      savedAt: Date.now(),
    });
  }

  let renderScheduled = null;

  function renderAnswer(turn, view, final) {
    const fragment = window.ChatMarkdown.render(turn.answer || "", {
      highlight: final,
      copy: copyText,
    });
    view.answerText.replaceChildren(fragment);
  }

  function scheduleAnswerRender(turn, view) {
    // Many chunks can arrive per frame: parse once per frame, not once per chunk.
    if (renderScheduled) return;
    renderScheduled = window.requestAnimationFrame(() => {
      renderScheduled = null;
      const follow = nearBottom();
      renderAnswer(turn, view, false);
      scrollToEnd(follow);
    });
  }

  function renderTurn(turn) {
    els.emptyHint.hidden = true;
    const answerText = el("div", { className: "answer-text markdown" });
    const answer = el("section", { className: "answer", "aria-label": "Answer" }, [answerText]);
    const attached = (turn.attachmentNames || []).length
      ? el("p", { className: "note", text: "Attached: " + turn.attachmentNames.join(", ") })
      : null;
    const article = el("article", { className: "turn", "data-query-id": turn.queryId || null }, [
      el("div", { className: "question", "aria-label": "Question" }, [el("p", { text: turn.question }), attached]),
      answer,
    ]);
    const extras = el("div", { className: "extras" });
    answer.appendChild(extras);
    els.transcript.appendChild(article);
    const view = { article, answer, answerText, extras };
    renderAnswer(turn, view, turn.status && turn.status !== "streaming");
    if (turn.status && turn.status !== "streaming") renderExtras(turn, view);
    return view;
  }

  function renderExtras(turn, view) {
    const extras = view.extras;
    extras.replaceChildren();
    if (turn.error) extras.appendChild(el("p", { className: "answer-error", text: "Error: " + turn.error }));
    if (turn.status === "cancelled") extras.appendChild(el("p", { className: "stopped note", text: "Stopped." }));

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

    const sources = renderCitations(turn.citations || []);
    if (sources) extras.appendChild(sources);

    if (turn.status && turn.status !== "streaming") extras.appendChild(renderActions(turn, view));
    if (turn.meta) extras.appendChild(el("p", { className: "meta note", text: turn.meta }));
  }

  /* Web sources ({type:"web", title, url}) and document passages ({type:"document",
   * file_id, title, page, snippet, url}) as one numbered list. */
  function renderCitations(citations) {
    const items = citations.filter((c) => c && typeof c === "object" && (safeUrl(c.url) || c.type === "document"));
    if (!items.length) return null;
    const list = el("ol", { className: "citations" });
    for (const citation of items) {
      const href = safeUrl(citation.url);
      const title = String(citation.title || citation.url || "Document");
      const name = href
        ? el("a", { href, target: "_blank", rel: "noopener noreferrer", text: title })
        : el("span", { className: "citation-title", text: title });
      const parts = [name];
      if (citation.type === "document") {
        parts.push(el("span", { className: "citation-kind note", text: " document" + (citation.page ? ", page " + citation.page : "") }));
        if (citation.snippet) parts.push(el("blockquote", { className: "snippet", text: String(citation.snippet) }));
      } else if (href) {
        parts.push(el("span", { className: "citation-kind note", text: " " + new URL(href).hostname }));
      }
      list.appendChild(el("li", { className: "citation", "data-type": citation.type || "web" }, parts));
    }
    return el("div", { className: "sources" }, [el("h3", { text: "Sources" }), list]);
  }

  function productImage(src, title) {
    const img = el("img", { src, alt: title, loading: "lazy", referrerpolicy: "no-referrer" });
    // A shop's image that fails to load should not leave a broken box behind.
    img.addEventListener("error", () => img.replaceWith(el("div", { className: "no-image", "aria-hidden": "true" })));
    return img;
  }

  // ---------------------------------------------------------------- answer actions
  function renderActions(turn, view) {
    const bar = el("div", { className: "answer-actions", role: "group", "aria-label": "Answer actions" });
    const copy = el("button", { type: "button", className: "small", text: "Copy answer" });
    copy.addEventListener("click", () => copyText(turn.answer || "", copy));
    bar.appendChild(copy);

    const regenerate = el("button", { type: "button", className: "small regenerate", text: "Regenerate" });
    regenerate.disabled = isGenerating() || !els.provider;
    regenerate.addEventListener("click", () => regenerateTurn(turn));
    bar.appendChild(regenerate);

    if (turn.queryId) {
      const rating = turn.feedback ? turn.feedback.rating : null;
      // Words, not emoji: many systems (and screen readers) have no good rendering of them.
      const up = el("button", { type: "button", className: "small thumb-up", "aria-pressed": rating === 1 ? "true" : "false", text: "Good answer" });
      const down = el("button", { type: "button", className: "small thumb-down", "aria-pressed": rating === -1 ? "true" : "false", text: "Bad answer" });
      up.addEventListener("click", () => rate(turn, view, 1));
      down.addEventListener("click", () => rate(turn, view, -1));
      bar.append(up, down);
    }
    const wrapper = el("div", { className: "actions-wrapper" }, [bar]);
    if (turn.commentOpen) wrapper.appendChild(feedbackForm(turn, view));
    else if (turn.feedback && turn.feedback.comment) {
      wrapper.appendChild(el("p", { className: "note feedback-comment", text: "Your comment: " + turn.feedback.comment }));
    }
    return wrapper;
  }

  async function rate(turn, view, rating) {
    try {
      const result = await api("POST", "answers/" + encodeURIComponent(turn.queryId) + "/feedback", {
        rating,
        comment: (turn.feedback && turn.feedback.rating === rating && turn.feedback.comment) || "",
      });
      turn.feedback = result.feedback;
      turn.commentOpen = true;
      renderExtras(turn, view);
      setStatus(rating === 1 ? "Thanks: marked as a good answer." : "Thanks: marked as a bad answer.");
      const box = view.extras.querySelector(".feedback-form textarea");
      if (box) box.focus();
    } catch (err) {
      showError("The rating was not saved: " + err.message);
    }
  }

  function feedbackForm(turn, view) {
    const id = "comment-" + (turn.queryId || newId());
    const box = el("textarea", { id, rows: "2", maxlength: "2000" });
    box.value = (turn.feedback && turn.feedback.comment) || "";
    const save = el("button", { type: "submit", className: "small primary", text: "Send comment" });
    const skip = el("button", { type: "button", className: "small", text: "Skip" });
    const form = el("form", { className: "feedback-form" }, [
      el("label", { for: id, text: "What was good or bad about it? (optional)" }),
      box,
      el("div", { className: "actions" }, [save, skip]),
    ]);
    const close = () => {
      turn.commentOpen = false;
      renderExtras(turn, view);
      const again = view.extras.querySelector(turn.feedback.rating === 1 ? ".thumb-up" : ".thumb-down");
      if (again) again.focus();
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const result = await api("POST", "answers/" + encodeURIComponent(turn.queryId) + "/feedback", {
          rating: turn.feedback.rating,
          comment: box.value.trim(),
        });
        turn.feedback = result.feedback;
        setStatus("Thanks for the comment.");
        close();
      } catch (err) {
        showError("The comment was not saved: " + err.message);
      }
    });
    skip.addEventListener("click", close);
    box.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        close();
      }
    });
    return form;
  }

  function regenerateTurn(turn) {
    if (isGenerating()) return;
    const request = turn.request || {};
    sendQuery({
      query: turn.question,
      mode: turn.mode || "chat",
      selectedOption: request.selectedOption || null,
      provider: request.provider,
      model: request.model,
      webSearch: request.webSearch,
      useMemory: request.useMemory,
      useDocuments: request.useDocuments,
      files: request.files || [],
      regenerated: true,
    });
  }

  function formatMs(ms) {
    return ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(1) + " s";
  }

  function formatCost(usd) {
    if (typeof usd !== "number") return null;
    if (usd === 0) return "$0";
    return "$" + (usd < 0.01 ? usd.toFixed(5) : usd.toFixed(4));
  }

  function describe(final, turn) {
    const parts = [turn.provider && turn.model ? turn.provider + " / " + turn.model : turn.provider];
    const usage = final.usage || {};
    if (usage.total_tokens) {
      const detail = usage.input_tokens || usage.output_tokens ? " (" + (usage.input_tokens || 0) + " in, " + (usage.output_tokens || 0) + " out)" : "";
      parts.push(usage.total_tokens + " tokens" + detail);
    }
    const cost = formatCost(usage.cost_usd);
    if (cost) parts.push(cost);
    const latency = final.latency || {};
    if (latency.total_ms) parts.push(formatMs(latency.total_ms));
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
    for (const button of els.transcript.querySelectorAll("button.option, button.regenerate")) {
      button.disabled = on || !els.provider;
    }
    for (const button of els.conversationList.querySelectorAll("button.open")) button.disabled = on;
    els.newConversation.disabled = on;
    if (!on) renderAllOptionsEnabled();
  }

  function startTurn(turn, state) {
    resetAnnouncer();
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
    if (renderScheduled) window.cancelAnimationFrame(renderScheduled);
    renderScheduled = null;
    speakNow();
    view.answer.removeAttribute("aria-busy");
    view.article.classList.remove("streaming");
    if (turn.queryId) view.article.dataset.queryId = turn.queryId;
    renderAnswer(turn, view, true);
    conversation.turns.push(turn);
    storageSet(localStorage, inflightKey(conversation.id), null);
    const stopHadFocus = document.activeElement === els.stop;
    current = null;
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

  function renderAllOptionsEnabled() {
    // Only the latest turn's options can still be answered.
    const last = conversation.turns[conversation.turns.length - 1];
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
      } else if (current && current.phase === "starting" && current.sent) {
        // The connection dropped before the server named the query: it cannot be followed.
        failCurrent("The connection dropped before the answer started. Please ask again.");
      }
    });
    socket.addEventListener("message", (event) => onMessage(event.data));
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
      if (current) setStatus("Connection lost; the answer keeps being written and will resume.");
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

  function applyFinal(turn, event) {
    // The stored answer is authoritative (a replay after the log expired has no chunks).
    if (typeof event.response === "string" && event.response) turn.answer = event.response;
    turn.options = Array.isArray(event.options) ? event.options : [];
    turn.productCards = Array.isArray(event.product_cards) ? event.product_cards : [];
    turn.citations = Array.isArray(event.citations) ? event.citations : [];
    turn.meta = describe(event, turn);
    turn.finalStatus = event.status;
  }

  function handleEvent(event) {
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

  // ---------------------------------------------------------------- asking
  async function sendQuery(input) {
    showError("");
    if (!els.provider || isGenerating()) return false;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      showError("Not connected to the server yet; try again in a moment.");
      return false;
    }
    // A document that could not be read is left out (the server refuses it); the list
    // still shows why.
    const files =
      input.files ||
      attachments
        .filter((a) => a.state === "ready" && !(a.ingestion && a.ingestion.status === "failed"))
        .map((a) => ({ kind: a.kind, fileId: a.fileId, name: a.name }));
    const turn = {
      question: input.query,
      answer: "",
      attachmentNames: files.map((f) => f.name),
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
        useMemory: input.useMemory !== undefined ? input.useMemory : els.useMemory.checked,
        useDocuments: input.useDocuments !== undefined ? input.useDocuments : !!(els.useDocuments && els.useDocuments.checked),
        files,
      },
    };
    const message = {
      type: "query",
      user_id: cfg.userId,
      session_id: conversation.id,
      query: input.query,
      model_provider: turn.request.provider,
      model_name: turn.request.model,
      mode: turn.mode,
      web_search: turn.request.webSearch,
      use_memory: turn.request.useMemory,
      use_documents: turn.request.useDocuments,
      attachments: files.filter((f) => f.kind === "image").map((f) => f.fileId),
      selected_option: turn.request.selectedOption,
    };
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
    current.sent = true;
    recordActivity("query", { mode: turn.mode, regenerated: !!input.regenerated, attachments: files.length });
    if (!input.files) {
      attachments = [];
      renderAttachments();
    }
    if (conversation.turns.length === 0) refreshConversations();
    return true;
  }

  function chooseOption(turn, option) {
    if (isGenerating()) return;
    setMode("shopping");
    turn.optionChosen = option;
    sendQuery({ query: option, selectedOption: option, mode: "shopping" }).then((sent) => {
      // Only a sent choice is final: if the socket is down, the buttons stay usable.
      if (!sent) turn.optionChosen = null;
    });
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

  els.composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (isGenerating()) return;
    const query = els.question.value.trim();
    if (!query) {
      showError("Type a question first.");
      els.question.focus();
      return;
    }
    const uploading = attachmentsUploading();
    if (uploading.length) {
      showError("Wait until " + uploading.map((a) => a.name).join(", ") + " is uploaded, or remove it.");
      return;
    }
    // The server answers from ready documents only (409 otherwise): wait for them.
    const reading = documentsBeingRead();
    if (reading.length) {
      showError("Wait until " + reading.map((a) => a.name).join(", ") + " has been read, or remove it.");
      return;
    }
    els.question.value = "";
    if (!(await sendQuery({ query, mode: selectedMode() })) && !els.question.value) els.question.value = query;
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

  // ---------------------------------------------------------------- conversations
  let listed = [];

  async function refreshConversations() {
    try {
      listed = (await api("GET", "conversations")).conversations;
    } catch (_err) {
      return; // the list stays as it was; the chat itself still works
    }
    renderConversationList();
  }

  function conversationTitle(row) {
    if (row.title) return row.title;
    // The server names a conversation by its first stored question; until that question
    // is stored (it is being answered), the page knows it already.
    if (row.session_id === conversation.id) {
      const first = conversation.turns[0] || (current && current.turn);
      if (first && first.question) return first.question.split(/\s+/).join(" ").trim();
    }
    return "Untitled conversation";
  }

  function renderConversationList() {
    els.conversationList.replaceChildren();
    els.conversationsEmpty.hidden = listed.length > 0;
    for (const row of listed) {
      const isCurrent = row.session_id === conversation.id;
      const open = el("button", {
        type: "button",
        className: "open",
        "aria-current": isCurrent ? "true" : null,
        text: conversationTitle(row),
      });
      open.disabled = isGenerating();
      open.addEventListener("click", () => openConversation(row.session_id, { focus: true }));
      const rename = el("button", {
        type: "button",
        className: "link-button rename",
        "aria-label": "Rename " + conversationTitle(row),
        text: "Rename",
      });
      const item = el("li", { "data-session-id": row.session_id, className: isCurrent ? "current" : null }, [
        open,
        el("span", { className: "when note", text: new Date(row.started_at).toLocaleString() }),
        rename,
      ]);
      rename.addEventListener("click", () => startRename(item, row));
      els.conversationList.appendChild(item);
    }
    if (conversation.id) {
      const row = listed.find((r) => r.session_id === conversation.id);
      els.title.textContent = row && (row.title || conversation.turns.length || current) ? conversationTitle(row) : "New conversation";
    }
  }

  function startRename(item, row) {
    const id = "rename-" + row.session_id;
    const input = el("input", { type: "text", id, maxlength: "200", value: row.title || "" });
    const save = el("button", { type: "submit", className: "small primary", text: "Save" });
    const cancel = el("button", { type: "button", className: "small", text: "Cancel" });
    const form = el("form", { className: "rename-form" }, [
      el("label", { for: id, className: "visually-hidden", text: "New title" }),
      input,
      save,
      cancel,
    ]);
    const done = () => {
      renderConversationList();
      const again = els.conversationList.querySelector('li[data-session-id="' + CSS.escape(row.session_id) + '"] button.rename');
      if (again) again.focus();
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const result = await api("PATCH", "conversations/" + encodeURIComponent(row.session_id), { title: input.value });
        row.title = result.title;
        await refreshConversations();
        setStatus("Renamed.");
      } catch (err) {
        showError("The title was not saved: " + err.message);
        return;
      }
      done();
    });
    cancel.addEventListener("click", done);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        done();
      }
    });
    item.replaceChildren(form);
    input.focus();
    input.select();
  }

  function clearTranscript() {
    for (const article of Array.from(els.transcript.querySelectorAll("article.turn"))) article.remove();
    els.emptyHint.hidden = false;
    conversation.turns = [];
    resetAnnouncer();
  }

  function turnFromStored(stored) {
    const turn = {
      question: stored.question,
      answer: stored.response || "",
      queryId: stored.query_id,
      provider: stored.model_provider,
      model: stored.model_name,
      mode: stored.mode || "chat",
      feedback: stored.feedback,
      request: { provider: stored.model_provider, model: stored.model_name, files: [] },
      error: stored.error && stored.error.message,
      status: stored.status === "cancelled" ? "cancelled" : stored.status === "failed" ? "failed" : "completed",
    };
    applyFinal(turn, stored);
    return turn;
  }

  async function openConversation(id, { focus, skipQueryId } = {}) {
    if (isGenerating()) return;
    const previous = conversation.started && conversation.id !== id ? conversation.id : null;
    showError("");
    let detail = null;
    try {
      detail = await api("GET", "conversations/" + encodeURIComponent(id));
    } catch (err) {
      if (err.status !== 404) {
        showError("The conversation could not be opened: " + err.message);
        return;
      }
    }
    if (previous) leaveConversation(previous);
    clearTranscript();
    conversation = { id, started: !!detail, turns: [] };
    rememberCurrent();
    for (const stored of detail ? detail.turns : []) {
      if (stored.query_id === skipQueryId) continue; // resumed below, live
      const turn = turnFromStored(stored);
      renderTurn(turn);
      conversation.turns.push(turn);
    }
    renderAllOptionsEnabled();
    renderDetails(detail);
    renderConversationList();
    if (detail) {
      // Coming back (a reload, or opening it again) keeps the session open.
      api("POST", "conversations", { session_id: id, ...browserEnvironment() }).catch(() => {});
    }
    scrollToEnd(true);
    if (focus) {
      els.title.focus();
      setStatus("Opened " + els.title.textContent + ".");
    }
  }

  function newConversation() {
    if (isGenerating()) return;
    if (conversation.started) leaveConversation(conversation.id);
    clearTranscript();
    conversation = { id: newId(), started: false, turns: [] };
    rememberCurrent();
    renderDetails(null);
    renderConversationList();
    els.title.textContent = "New conversation";
    showError("");
    setStatus("New conversation.");
    els.question.focus();
  }

  els.newConversation.addEventListener("click", newConversation);

  // ---------------------------------------------------------------- details panel
  async function refreshDetails() {
    if (!conversation.started) return;
    let detail;
    try {
      detail = await api("GET", "conversations/" + encodeURIComponent(conversation.id));
    } catch (_err) {
      return; // keep what is shown
    }
    renderDetails(detail);
    // A question that left the model open was answered by the server's choice (its
    // default, or an experiment's): show the model that really answered.
    for (const stored of detail.turns) {
      const turn = conversation.turns.find((t) => t.queryId === stored.query_id);
      if (!turn || (turn.provider === stored.model_provider && turn.model === stored.model_name)) continue;
      turn.provider = stored.model_provider;
      turn.model = stored.model_name;
      turn.meta = describe(stored, turn);
      const article = els.transcript.querySelector('article.turn[data-query-id="' + CSS.escape(turn.queryId) + '"]');
      const meta = article && article.querySelector(".meta");
      if (meta) meta.textContent = turn.meta;
    }
  }

  function renderDetails(detail) {
    els.details.replaceChildren();
    if (!detail) {
      els.details.appendChild(el("dd", { className: "note", text: "Nothing asked yet." }));
      return;
    }
    const usage = detail.usage || {};
    const rows = [
      ["Started", new Date(detail.started_at).toLocaleString()],
      ["Answers", String(usage.answers || 0)],
      ["Tokens", (usage.total_tokens || 0) + " (" + (usage.input_tokens || 0) + " in, " + (usage.output_tokens || 0) + " out)"],
      ["Cost", formatCost(usage.cost_usd) || "unknown"],
      ["Time answering", formatMs(usage.latency_ms_total || 0)],
    ];
    const experiments = Object.entries(detail.experiments || {});
    if (experiments.length) rows.push(["Experiments", experiments.map(([key, variant]) => key + ": " + variant).join(", ")]);
    if (detail.ended_at) rows.push(["Session ended", new Date(detail.ended_at).toLocaleString()]);
    for (const [name, value] of rows) {
      els.details.append(el("dt", { text: name }), el("dd", { "data-field": name.toLowerCase(), text: value }));
    }
  }

  // ---------------------------------------------------------------- account limits
  // The signed-in account's own limits (the page asks without an API key), from
  // /chat/api/usage: what is used and what is left in each window, and storage.
  const LIMIT_LABELS = {
    requests_per_minute: "Questions this minute",
    tokens_per_day: "Tokens today",
    usd_per_month: "Spent this month",
  };

  async function refreshLimits() {
    let usage;
    try {
      usage = await api("GET", "usage");
    } catch (_err) {
      return; // keep what is shown
    }
    renderLimits(usage);
  }

  function formatAmount(name, value) {
    if (name === "usd_per_month") return value === 0 ? "$0" : formatCost(value);
    if (name === "storage_mb") return value + " MB";
    return String(value);
  }

  function limitLine(name, window) {
    const used = formatAmount(name, window.used);
    if (window.limit === null || window.limit === undefined) return used + " used (no limit)";
    return used + " of " + formatAmount(name, window.limit) + " used, " + formatAmount(name, window.remaining) + " left";
  }

  function renderLimits(usage) {
    const rows = Object.entries(usage.limits || {}).map(([name, window]) => [name, LIMIT_LABELS[name] || name, window]);
    if (usage.storage_mb) rows.push(["storage_mb", "Storage", usage.storage_mb]);
    els.limits.replaceChildren();
    for (const [name, label, window] of rows) {
      els.limits.append(el("dt", { text: label }), el("dd", { "data-limit": name, text: limitLine(name, window) }));
    }
  }

  // ---------------------------------------------------------------- leaving
  window.addEventListener("pagehide", () => {
    if (conversation.started) leaveConversation(conversation.id);
  });

  const logout = document.querySelector('form[action$="/logout/"]');
  if (logout) {
    logout.addEventListener("submit", () => {
      stopped = true; // no reconnect attempts while the page unloads
      if (conversation.id) storageSet(localStorage, inflightKey(conversation.id), null);
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
  async function start() {
    // On a phone the settings would push the chat a screen down: they start folded.
    const settingsPanel = document.querySelector(".settings-panel");
    if (settingsPanel && window.matchMedia("(max-width: 50rem)").matches) settingsPanel.open = false;
    pruneOldInflight();
    updateProviderNote();
    let id = null;
    try {
      id = sessionStorage.getItem(CURRENT_KEY);
    } catch (_err) {
      id = null;
    }
    const inflight = id ? storageGet(localStorage, inflightKey(id)) : null;
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
      if (current.cancelPending) els.stop.disabled = true;
      setStatus("Resuming the answer…");
    }
    scrollToEnd(true);
    connect();
    refreshLimits();
  }

  start();
})();
