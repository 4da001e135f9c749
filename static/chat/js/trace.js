/* An answer's "Trace": the steps that made it (its spans), as a small waterfall that is
 * read from /chat/api/answers/{id}/trace the first time the user opens it. */

import { api } from "./api.js";
import { formatCost } from "./format.js";
import { el } from "./page.js";

export function renderTrace(turn) {
  const panel = el("details", { className: "answer-trace" }, [el("summary", { text: "Trace" })]);
  const body = el("div", { className: "trace-body" });
  panel.appendChild(body);
  if (turn.trace) {
    panel.open = true;
    body.appendChild(waterfall(turn.trace));
  }
  panel.addEventListener("toggle", async () => {
    if (!panel.open || turn.trace) return;
    body.replaceChildren(el("p", { className: "note", text: "Loading the trace…" }));
    try {
      const trace = await api("GET", "answers/" + encodeURIComponent(turn.queryId) + "/trace");
      turn.trace = trace.steps;
      body.replaceChildren(waterfall(turn.trace));
    } catch (err) {
      body.replaceChildren(el("p", { className: "answer-error", text: "The trace could not be read: " + err.message }));
    }
  });
  return panel;
}

function waterfall(steps) {
  if (!steps.length) {
    // Sampled out (TRACE_SAMPLE_RATE), expired, or asked before traces existed.
    return el("p", { className: "note", text: "No trace was kept for this answer." });
  }
  const list = el("ol", { className: "trace-steps", "aria-label": "Steps of this answer" });
  for (const step of steps) {
    const bar = el("span", { className: "trace-bar", "aria-hidden": "true" });
    bar.style.marginLeft = step.offset_pct + "%";
    bar.style.width = step.width_pct + "%";
    const name = el("span", { className: "trace-name", text: step.name });
    name.style.paddingLeft = step.depth * 0.9 + "em";
    const facts = [duration(step.duration_ms)];
    if (step.tokens !== null) facts.push(step.tokens + " tokens");
    const cost = formatCost(step.cost_usd);
    if (cost) facts.push(cost);
    if (step.cancelled) facts.push("stopped");
    const item = el("li", { className: "trace-step", "data-status": step.status }, [
      name,
      el("span", { className: "trace-track" }, [bar]),
      el("span", { className: "trace-facts note", text: facts.join(" · ") }),
    ]);
    list.appendChild(item);
  }
  return list;
}

function duration(ms) {
  return ms < 10 ? ms.toFixed(1) + " ms" : ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(2) + " s";
}
