/* The settings panel's provider picker: a provider's default model and its note. */

import { cfg, els } from "./page.js";
import { state } from "./state.js";

export function updateProviderNote() {
  if (!els.provider) return;
  const note = (cfg.notes || {})[els.provider.value] || "";
  els.providerNote.textContent = note;
  els.providerNote.hidden = !note;
}

export function initSettings() {
  if (!els.provider) return;
  els.provider.addEventListener("change", () => {
    els.model.value = (cfg.defaultModels || {})[els.provider.value] || "";
    state.modelChosen = true;
    updateProviderNote();
  });
  els.model.addEventListener("input", () => {
    state.modelChosen = true;
  });
}
