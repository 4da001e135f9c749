/* Files attached to the next question: uploaded as soon as they are picked, documents
 * then read (ingested) by the server, which this module polls until they are ready. */

import { api } from "./api.js";
import { cfg, el, els, setStatus, showError } from "./page.js";
import { newId } from "./storage.js";

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

function attach() {
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
}

export function initAttachments() {
  els.attachment.addEventListener("change", attach);
}

export function attachmentsUploading() {
  return attachments.filter((a) => a.state === "uploading");
}

export function documentsBeingRead() {
  return attachments.filter((a) => a.kind === "document" && a.ingestion && INGESTING.includes(a.ingestion.status));
}

/* What the next question sends: [{kind, fileId, name}]. A document that could not be read
 * is left out (the server refuses it); the list still shows why. */
export function readyFiles() {
  return attachments
    .filter((a) => a.state === "ready" && !(a.ingestion && a.ingestion.status === "failed"))
    .map((a) => ({ kind: a.kind, fileId: a.fileId, name: a.name }));
}

/* The question went out with them: the next one starts with none. */
export function clearAttachments() {
  attachments = [];
  renderAttachments();
}
