/* The signed-in account's own limits (the page asks without an API key), from
 * /chat/api/usage: what is used and what is left in each window, and storage. */

import { api } from "./api.js";
import { formatCost } from "./format.js";
import { el, els } from "./page.js";

const LIMIT_LABELS = {
  requests_per_minute: "Questions this minute",
  tokens_per_day: "Tokens today",
  usd_per_month: "Spent this month",
};

export async function refreshLimits() {
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
