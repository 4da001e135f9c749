/* Numbers as the page shows them: durations, costs, and an answer's one-line summary. */

export function formatMs(ms) {
  return ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(1) + " s";
}

export function formatCost(usd) {
  if (typeof usd !== "number") return null;
  if (usd === 0) return "$0";
  return "$" + (usd < 0.01 ? usd.toFixed(5) : usd.toFixed(4));
}

/* "provider / model · tokens · cost · time · note" for a final event or a stored turn. */
export function describe(final, turn) {
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
