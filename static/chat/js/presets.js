/* Presets (the settings panel's "Presets"): the signed-in user's saved answer settings
 * (model, temperature, system prompt) and question options (mode, web search, memory,
 * all my documents). Applying one fills the form and stores its settings with the open
 * conversation, so the server answers every question in it with them
 * (/chat/api/presets; the conversation's PUT .../settings). */

import { api } from "./api.js";
import { answerSettingsShown, renderAnswerSettings, saveAnswerSettings } from "./answer-settings.js";
import { el, els, selectedMemory, selectedMode, setMode, setStatus, showError } from "./page.js";
import { state } from "./state.js";

let presets = [];

function optionsShown() {
  return {
    mode: selectedMode(),
    web_search: els.webSearch.checked,
    memory: selectedMemory(),
    use_documents: !!(els.useDocuments && els.useDocuments.checked),
  };
}

function showOptions(options) {
  if (options.mode) setMode(options.mode);
  if (typeof options.web_search === "boolean") els.webSearch.checked = options.web_search;
  if (options.memory) {
    const radio = document.querySelector('input[name="memory"][value="' + options.memory + '"]');
    if (radio) radio.checked = true;
  }
  if (els.useDocuments && typeof options.use_documents === "boolean") els.useDocuments.checked = options.use_documents;
}

function renderPresets(selectedId) {
  const choices = [el("option", { value: "", text: "No preset chosen" })];
  for (const preset of presets) choices.push(el("option", { value: preset.id, text: preset.name }));
  els.presetSelect.replaceChildren(...choices);
  els.presetSelect.value = selectedId || "";
}

export async function refreshPresets(selectedId) {
  try {
    presets = (await api("GET", "presets")).presets;
    renderPresets(selectedId);
  } catch (err) {
    showError("The presets could not be loaded: " + err.message);
  }
}

function chosen() {
  return presets.find((p) => p.id === els.presetSelect.value) || null;
}

async function save() {
  const name = els.presetName.value.trim();
  if (!name) {
    showError("Name the preset first.");
    els.presetName.focus();
    return;
  }
  showError("");
  try {
    const saved = await api("POST", "presets", { name, settings: answerSettingsShown(), options: optionsShown() });
    els.presetName.value = "";
    await refreshPresets(saved.id);
    setStatus("Preset " + saved.name + " saved.");
  } catch (err) {
    showError("The preset was not saved: " + err.message);
  }
}

async function apply() {
  const preset = chosen();
  if (!preset) {
    showError("Choose a preset first.");
    els.presetSelect.focus();
    return;
  }
  renderAnswerSettings({ session_id: state.conversation.id, settings: preset.settings });
  showOptions(preset.options || {});
  await saveAnswerSettings("Preset " + preset.name + " applied to this conversation.");
}

async function remove() {
  const preset = chosen();
  if (!preset) {
    showError("Choose a preset first.");
    els.presetSelect.focus();
    return;
  }
  try {
    await api("DELETE", "presets/" + encodeURIComponent(preset.id));
    await refreshPresets();
    setStatus("Preset " + preset.name + " deleted.");
  } catch (err) {
    showError("The preset was not deleted: " + err.message);
  }
}

export function initPresets() {
  els.savePreset.addEventListener("click", save);
  els.applyPreset.addEventListener("click", apply);
  els.deletePreset.addEventListener("click", remove);
  refreshPresets();
}
