/* The conversation details panel: when it started, answers, tokens, cost, time, and the
 * experiments it was assigned to. */

import { api } from "./api.js";
import { describe, formatCost, formatMs } from "./format.js";
import { renderAnswerSettings } from "./answer-settings.js";
import { renderConversationActions } from "./manage.js";
import { el, els } from "./page.js";
import { state } from "./state.js";

export async function refreshDetails() {
  const conversation = state.conversation;
  if (!conversation.started) return;
  let detail;
  try {
    detail = await api("GET", "conversations/" + encodeURIComponent(conversation.id));
  } catch (_err) {
    return; // keep what is shown
  }
  // Another conversation was opened (or a new one begun) while this was read: its
  // details are shown, and these would hide its actions and overwrite its panel.
  if (state.conversation !== conversation) return;
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

export function renderDetails(detail) {
  renderConversationActions(detail);
  renderAnswerSettings(detail);
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
