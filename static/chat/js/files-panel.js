/* "Your files" (the sidebar panel): every file the signed-in user uploaded, newest
 * first, with its status (an image, or a document being read, ready or failed), a link
 * to open it and Delete (GET /chat/api/files, DELETE /chat/api/files/{id}: its passages
 * and bytes go too, and it leaves every conversation's documents). Read when opened. */

import { api } from "./api.js";
import { el, els, setStatus, showError } from "./page.js";
import { fileContentUrl } from "./transcript.js";

function fileStatus(file) {
  const ingestion = file.ingestion;
  if (!ingestion || !ingestion.status) return "image";
  if (ingestion.status === "ready") return "ready" + (ingestion.pages ? ", " + ingestion.pages + " pages" : "");
  if (ingestion.status === "failed") return "could not be read" + (ingestion.error ? ": " + (ingestion.error.message || ingestion.error) : "");
  return "being read";
}

function sizeText(bytes) {
  if (typeof bytes !== "number") return "";
  return bytes < 1024 * 1024 ? Math.max(1, Math.round(bytes / 1024)) + " KB" : (bytes / 1024 / 1024).toFixed(1) + " MB";
}

async function remove(file, button) {
  if (!window.confirm("Delete " + file.filename + "? Its passages leave every conversation.")) return;
  button.disabled = true;
  try {
    await api("DELETE", "files/" + encodeURIComponent(file.file_id));
    setStatus(file.filename + " deleted.");
    await refreshFiles();
  } catch (err) {
    button.disabled = false;
    showError("The file was not deleted: " + err.message);
  }
}

export async function refreshFiles() {
  try {
    const files = (await api("GET", "files")).files;
    const rows = files.map((file) => {
      const remover = el("button", { type: "button", className: "small", "aria-label": "Delete " + file.filename, text: "Delete" });
      remover.addEventListener("click", () => remove(file, remover));
      return el("li", { className: "file-row", "data-file-id": file.file_id }, [
        el("a", { href: fileContentUrl(file.file_id), target: "_blank", rel: "noopener", text: file.filename }),
        el("span", { className: "note file-status", text: " " + [fileStatus(file), sizeText(file.size)].filter(Boolean).join(" · ") }),
        remover,
      ]);
    });
    els.fileList.replaceChildren(...rows);
    els.filesStatus.textContent = files.length ? files.length + (files.length === 1 ? " file" : " files") : "No files yet.";
  } catch (err) {
    els.filesStatus.textContent = "The files could not be loaded: " + err.message;
  }
}

export function initFilesPanel() {
  els.filesPanel.addEventListener("toggle", () => {
    if (els.filesPanel.open) refreshFiles();
  });
}
