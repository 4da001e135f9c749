/* The transcript: each turn (question, answer as Markdown, options, product cards,
 * sources, actions, feedback) as the page shows it, and the turn's shape from a final
 * event or a stored answer.
 *
 * The option and Regenerate buttons ask a new question, which is ask.js's job; ask.js
 * sits above this module, so main.js hands those two functions in (setTurnActions) and
 * the imports stay one-way.
 */

import { resetAnnouncer } from "./announcer.js";
import { api } from "./api.js";
import { describe } from "./format.js";
import { render as renderMarkdown } from "./markdown.js";
import { cfg, copyText, el, els, nearBottom, safeUrl, scrollToEnd, setStatus, showError } from "./page.js";
import { isGenerating, state } from "./state.js";
import { newId } from "./storage.js";
import { renderTrace } from "./trace.js";

const actions = { choose: () => {}, regenerate: () => {} };

/* handlers.choose(turn, option), handlers.regenerate(turn[, editedQuestion]). */
export function setTurnActions(handlers) {
  Object.assign(actions, handlers);
}

let renderScheduled = null;

export function renderAnswer(turn, view, final) {
  const fragment = renderMarkdown(turn.answer || "", {
    highlight: final,
    copy: copyText,
  });
  view.answerText.replaceChildren(fragment);
}

export function scheduleAnswerRender(turn, view) {
  // Many chunks can arrive per frame: parse once per frame, not once per chunk.
  if (renderScheduled) return;
  renderScheduled = window.requestAnimationFrame(() => {
    renderScheduled = null;
    const follow = nearBottom();
    renderAnswer(turn, view, false);
    scrollToEnd(follow);
  });
}

export function cancelAnswerRender() {
  if (renderScheduled) window.cancelAnimationFrame(renderScheduled);
  renderScheduled = null;
}

export function renderTurn(turn) {
  els.emptyHint.hidden = true;
  const answerText = el("div", { className: "answer-text markdown" });
  const answer = el("section", { className: "answer", "aria-label": "Answer" }, [answerText]);
  const attached = (turn.attachmentNames || []).length
    ? el("p", { className: "note", text: "Attached: " + turn.attachmentNames.join(", ") })
    : null;
  const thumbnails = (turn.imageIds || []).length ? renderThumbnails(turn.imageIds) : null;
  const group = turn.alternativeOf || turn.queryId || null;
  const questionText = el("p", { className: "question-text", text: turn.question });
  const question = el("div", { className: "question", "aria-label": "Question" }, [questionText, attached, thumbnails]);
  // Edit, and the ‹ k/n › pager of a turn with alternatives.
  const tools = el("div", { className: "question-tools" });
  const article = el("article", { className: "turn", "data-query-id": turn.queryId || null, "data-group": group }, [
    question,
    tools,
    answer,
  ]);
  const extras = el("div", { className: "extras" });
  answer.appendChild(extras);
  const view = { article, answer, answerText, extras, question, questionText };
  tools.appendChild(editButton(turn, view));
  placeAlternative(article, turn.alternativeOf);
  renderAnswer(turn, view, turn.status && turn.status !== "streaming");
  if (turn.status && turn.status !== "streaming") renderExtras(turn, view);
  return view;
}

/* A file's bytes through the page's own API (the login session; never the API key's
 * /api/v1 route, which a browser cannot use). */
export function fileContentUrl(fileId, page) {
  return cfg.apiBase + "files/" + encodeURIComponent(fileId) + "/content" + (page ? "#page=" + page : "");
}

function renderThumbnails(fileIds) {
  const list = el("ul", { className: "thumbnails", "aria-label": "Attached images" });
  fileIds.forEach((fileId, index) => {
    const src = fileContentUrl(fileId);
    const image = el("img", { src, alt: "Attached image " + (index + 1), loading: "lazy", className: "thumbnail" });
    list.appendChild(el("li", {}, [el("a", { href: src, target: "_blank", rel: "noopener" }, [image])]));
  });
  return list;
}

// ---------------------------------------------------------------- alternatives
function groupArticles(group) {
  return Array.from(els.transcript.querySelectorAll("article.turn")).filter((a) => a.dataset.group === group);
}

/* A new answer of a turn that is already shown takes its place (after its last
 * alternative); the earlier ones are hidden behind the ‹ k/n › pager. */
function placeAlternative(article, group) {
  const siblings = group ? groupArticles(group) : [];
  if (!siblings.length) {
    els.transcript.appendChild(article);
    return;
  }
  for (const sibling of siblings) sibling.hidden = true;
  siblings[siblings.length - 1].after(article);
  refreshPager(group);
}

function showAlternative(group, index) {
  const articles = groupArticles(group);
  articles.forEach((a, i) => (a.hidden = i !== index));
  const pager = articles[index] && articles[index].querySelector(".alternatives .position");
  if (pager) pager.focus();
}

export function refreshPager(group) {
  if (!group) return;
  const articles = groupArticles(group);
  articles.forEach((article, index) => {
    const tools = article.querySelector(".question-tools");
    const old = tools.querySelector(".alternatives");
    if (old) old.remove();
    if (articles.length < 2) return;
    const previous = el("button", { type: "button", className: "small", "aria-label": "Previous answer", text: "‹" });
    const next = el("button", { type: "button", className: "small", "aria-label": "Next answer", text: "›" });
    previous.disabled = index === 0;
    next.disabled = index === articles.length - 1;
    previous.addEventListener("click", () => showAlternative(group, index - 1));
    next.addEventListener("click", () => showAlternative(group, index + 1));
    const position = el("span", {
      className: "position",
      tabindex: "-1",
      text: index + 1 + "/" + articles.length,
      "aria-label": "Answer " + (index + 1) + " of " + articles.length,
    });
    tools.appendChild(el("div", { className: "alternatives", role: "group", "aria-label": "Answers to this question" }, [previous, position, next]));
  });
}

/* A finished answer's turn is known by its first query id (set once the id arrived). */
export function settleGroup(turn, view) {
  if (!view.article.dataset.group && turn.queryId) view.article.dataset.group = turn.queryId;
}

// ---------------------------------------------------------------- edit and resend
function editButton(turn, view) {
  const button = el("button", { type: "button", className: "small edit-question", "aria-label": "Edit question", text: "Edit" });
  button.addEventListener("click", () => openEditor(turn, view, button));
  return button;
}

function openEditor(turn, view, button) {
  if (view.question.querySelector("form")) return;
  const box = el("textarea", { rows: "3", "aria-label": "Edit your question", maxlength: "8000" });
  box.value = turn.question;
  const send = el("button", { type: "submit", className: "small", text: "Send edited question" });
  const cancel = el("button", { type: "button", className: "small", text: "Cancel" });
  const form = el("form", { className: "edit-form" }, [box, el("div", { className: "edit-actions" }, [send, cancel])]);
  const close = () => {
    form.remove();
    view.questionText.hidden = false;
    button.hidden = false;
    button.focus();
  };
  cancel.addEventListener("click", close);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = box.value.trim();
    if (!text || isGenerating()) return;
    if (await actions.regenerate(turn, text)) {
      form.remove();
      view.questionText.hidden = false;
      button.hidden = false;
    }
  });
  box.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      close();
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  view.questionText.hidden = true;
  button.hidden = true;
  view.questionText.after(form);
  box.focus();
}

export function renderExtras(turn, view) {
  const extras = view.extras;
  extras.replaceChildren();
  if (turn.error) extras.appendChild(el("p", { className: "answer-error", text: "Error: " + turn.error }));
  if (turn.status === "cancelled") extras.appendChild(el("p", { className: "stopped note", text: "Stopped." }));

  if (turn.options && turn.options.length) {
    const group = el("div", { className: "options", role: "group", "aria-label": "Choose an option" });
    for (const option of turn.options) {
      const button = el("button", { type: "button", className: "option", text: String(option) });
      button.disabled = !!turn.optionChosen || isGenerating();
      button.addEventListener("click", () => actions.choose(turn, String(option)));
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
  if (turn.queryId && turn.status && turn.status !== "streaming") extras.appendChild(renderTrace(turn));
}

/* Web sources ({type:"web", title, url}) and the document passages the answer cites
 * ({type:"document", file_id, title, page, snippet, url, cited: true}) as one numbered
 * list; the passages it was shown but did not cite (cited: false) folded under "Also
 * searched". An answer stored before passages were marked lists them all as sources. */
function renderCitations(citations) {
  const items = citations.filter((c) => c && typeof c === "object" && (safeUrl(c.url) || c.type === "document"));
  if (!items.length) return null;
  const searched = items.filter((c) => c.type === "document" && c.cited === false);
  const relied = items.filter((c) => !searched.includes(c));
  const parts = [];
  if (relied.length) parts.push(el("h3", { text: "Sources" }), citationList(relied));
  if (searched.length) {
    parts.push(
      el("details", { className: "also-searched" }, [
        el("summary", { text: "Also searched (" + searched.length + (searched.length === 1 ? " passage)" : " passages)") }),
        citationList(searched),
      ]),
    );
  }
  return el("div", { className: "sources" }, parts);
}

function citationList(items) {
  const list = el("ol", { className: "citations" });
  for (const citation of items) {
    const href = citation.type === "document" && citation.file_id ? fileContentUrl(citation.file_id, citation.page) : safeUrl(citation.url);
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
  return list;
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
  regenerate.addEventListener("click", () => actions.regenerate(turn));
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

// ---------------------------------------------------------------- the whole transcript
export function renderAllOptionsEnabled() {
  // Only the latest turn's options can still be answered.
  const turns = state.conversation.turns;
  const last = turns[turns.length - 1];
  for (const button of els.transcript.querySelectorAll("button.option")) button.disabled = true;
  if (last && last.options && last.options.length && !last.optionChosen) {
    const articles = els.transcript.querySelectorAll("article.turn");
    const article = articles[articles.length - 1];
    if (article) for (const button of article.querySelectorAll("button.option")) button.disabled = false;
  }
}

export function clearTranscript() {
  for (const article of Array.from(els.transcript.querySelectorAll("article.turn"))) article.remove();
  els.emptyHint.hidden = false;
  state.conversation.turns = [];
  resetAnnouncer();
}

// ---------------------------------------------------------------- a turn's shape
export function applyFinal(turn, event) {
  // The stored answer is authoritative (a replay after the log expired has no chunks).
  if (typeof event.response === "string" && event.response) turn.answer = event.response;
  turn.options = Array.isArray(event.options) ? event.options : [];
  turn.productCards = Array.isArray(event.product_cards) ? event.product_cards : [];
  turn.citations = Array.isArray(event.citations) ? event.citations : [];
  turn.meta = describe(event, turn);
  turn.finalStatus = event.status;
}

export function turnFromStored(stored) {
  const turn = {
    question: stored.question,
    answer: stored.response || "",
    queryId: stored.query_id,
    alternativeOf: (stored.metadata && stored.metadata.alternative_of) || null,
    imageIds: Array.isArray(stored.images) ? stored.images : [],
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
