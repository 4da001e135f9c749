/* The open conversation's answer settings (the settings panel's "This conversation"):
 * its model, picked from what the deployment serves, its temperature and system prompt.
 * The server stores them with the conversation and answers every question in it with
 * them (PUT /chat/api/conversations/{id}/settings); the page only shows and saves them. */

import { api, ensureStarted } from "./api.js";
import { els, setStatus, showError } from "./page.js";
import { state } from "./state.js";

/* Called with the open conversation's detail (null before anything was stored). */
export function renderAnswerSettings(detail) {
  const settings = (detail && detail.session_id === state.conversation.id && detail.settings) || {};
  const model = settings.model_provider ? settings.model_provider + "/" + (settings.model_name || "") : "";
  // A model no longer served stays shown as "Default": the server then answers as left open.
  const option = [...els.conversationModel.options].find((o) => o.value === model);
  els.conversationModel.value = option ? model : "";
  els.conversationTemperature.value = settings.temperature ?? "";
  els.systemPrompt.value = settings.system_prompt || "";
}

/* The settings as the form shows them, in the API's shape. */
export function answerSettingsShown() {
  const picked = els.conversationModel.value;
  const slash = picked.indexOf("/");
  const temperature = els.conversationTemperature.value.trim();
  return {
    model_provider: picked ? picked.slice(0, slash) : null,
    model_name: picked ? picked.slice(slash + 1) : null,
    temperature: temperature === "" ? null : Number(temperature),
    system_prompt: els.systemPrompt.value.trim() ? els.systemPrompt.value : null,
  };
}

/* Store the settings the form shows for the open conversation; true when saved. */
export async function saveAnswerSettings(done) {
  const body = answerSettingsShown();
  showError("");
  try {
    // Settings can come first: they start the conversation, as a document does.
    await ensureStarted();
    const result = await api("PUT", "conversations/" + encodeURIComponent(state.conversation.id) + "/settings", body);
    renderAnswerSettings({ session_id: result.session_id, settings: result.settings });
    setStatus(done || "Saved: this conversation's questions are answered with these settings.");
    return true;
  } catch (err) {
    showError("The settings were not saved: " + err.message);
    return false;
  }
}

export function initAnswerSettings() {
  els.saveAnswerSettings.addEventListener("click", () => saveAnswerSettings());
}
