/* Files for questions. Images go with the next question only. Documents belong to the
 * conversation (state.conversation.documents): uploaded as soon as they are picked, added
 * to the conversation on the server, read (ingested) by the server, which this module
 * polls until they are ready, and sent with every later question in the conversation
 * until the user removes them. */

import { api, ensureStarted } from "./api.js";
import { cfg, el, els, setStatus, showError } from "./page.js";
import { state } from "./state.js";
import { newId } from "./storage.js";

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const INGESTING = ["pending", "processing"];
const POLL_MS = 1500;
let images = []; // the next question's: [{key, name, kind: "image", state, fileId, preview}]

function fileLine(item) {
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

function isReading(item) {
  return item.kind === "document" && !!item.ingestion && INGESTING.includes(item.ingestion.status);
}

function chip(item, removeLabel, onRemove) {
  const remove = el("button", { type: "button", className: "link-button", "aria-label": removeLabel, text: "Remove" });
  remove.addEventListener("click", () => {
    onRemove();
    els.attachment.focus();
  });
  const reading = isReading(item) && typeof item.ingestion.progress === "number";
  return el("li", { className: "chip", "data-state": item.state, "data-kind": item.kind, "data-file-id": item.fileId }, [
    item.preview
      ? el("img", { src: item.preview, alt: "", className: "thumb" })
      : el("span", { className: "doc-icon", "aria-hidden": "true", text: (item.name.split(".").pop() || "doc").slice(0, 4) }),
    el("span", { className: "attachment-name", text: item.name }),
    el("span", { className: "attachment-state note", text: fileLine(item) }),
    reading
      ? el("progress", {
          max: "1",
          value: String(item.ingestion.progress <= 1 ? item.ingestion.progress : item.ingestion.progress / 100),
          "aria-label": "Reading " + item.name,
        })
      : null,
    remove,
  ]);
}

export function renderAttachments() {
  els.attachments.replaceChildren(
    ...images.map((item) =>
      chip(item, "Remove " + item.name, () => {
        images = images.filter((a) => a !== item);
        renderAttachments();
      }),
    ),
  );
  const documents = state.conversation.documents;
  els.documentsBar.hidden = documents.length === 0;
  els.documents.replaceChildren(
    ...documents.map((item) => chip(item, "Remove " + item.name + " from this conversation", () => removeDocument(item))),
  );
}

async function removeDocument(item) {
  const conversation = state.conversation;
  conversation.documents = conversation.documents.filter((d) => d !== item);
  renderAttachments();
  setStatus(item.name + " removed from this conversation.");
  if (!item.fileId || !conversation.started) return;
  try {
    await api("DELETE", "conversations/" + encodeURIComponent(conversation.id) + "/documents/" + encodeURIComponent(item.fileId));
  } catch (err) {
    showError(item.name + " is still attached on the server: " + err.message);
  }
}

async function upload(item, file, conversation) {
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const stored = await api("POST", "files", form);
    item.fileId = stored.file_id;
    item.ingestion = stored.ingestion || null;
    if (item.kind === "document") {
      // The conversation keeps it: a reload, or opening the conversation again, finds it.
      if (state.conversation === conversation) await ensureStarted();
      const path = "conversations/" + encodeURIComponent(conversation.id) + "/documents";
      await api("POST", path, { file_id: item.fileId });
      // Removed while it was uploading: the server must not keep it either.
      if (!conversation.documents.includes(item)) {
        await api("DELETE", path + "/" + encodeURIComponent(item.fileId));
        return;
      }
    }
    item.state = "ready";
    setStatus(item.name + " uploaded.");
    if (item.kind === "document") pollIngestion(item, conversation);
  } catch (err) {
    item.state = "failed";
    item.error = err.message;
    setStatus(item.name + " was not uploaded: " + err.message);
  }
  renderAttachments();
}

async function pollIngestion(item, conversation) {
  // Only while its conversation is open and it is still attached: opening the
  // conversation again starts polling anew (documentsFromServer).
  const watched = () => state.conversation === conversation && conversation.documents.includes(item);
  while (watched() && isReading(item)) {
    await new Promise((resolve) => window.setTimeout(resolve, POLL_MS));
    try {
      const fresh = await api("GET", "files/" + encodeURIComponent(item.fileId));
      item.ingestion = fresh.ingestion || null;
    } catch (_err) {
      /* a blip: ask again next time */
    }
    if (state.conversation === conversation) renderAttachments();
  }
  // The list itself is not a live region (it is redrawn on every poll): say the outcome once.
  if (watched() && item.ingestion) setStatus(item.name + ": " + fileLine(item) + ".");
}

/* The conversation's documents as the server lists them (FileSerializer rows). */
export function documentsFromServer(rows, conversation) {
  conversation.documents = (rows || []).map((row) => ({
    key: newId(),
    name: row.filename,
    kind: "document",
    state: "ready",
    fileId: row.file_id,
    ingestion: row.ingestion || null,
    preview: null,
  }));
  for (const item of conversation.documents) if (isReading(item)) pollIngestion(item, conversation);
}

function attach() {
  const problems = [];
  const conversation = state.conversation;
  for (const file of Array.from(els.attachment.files || [])) {
    const kind = IMAGE_TYPES.includes(file.type) ? "image" : "document";
    if (kind === "image" && images.length >= cfg.maxAttachments) {
      problems.push("At most " + cfg.maxAttachments + " images can be attached.");
      continue;
    }
    if (kind === "document" && conversation.documents.length >= cfg.maxDocuments) {
      problems.push("A conversation has at most " + cfg.maxDocuments + " documents: remove one first.");
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
    if (kind === "image") images.push(item);
    else conversation.documents.push(item);
    upload(item, file, conversation);
  }
  els.attachment.value = "";
  renderAttachments();
  showError(problems.join(" "));
}

export function initAttachments() {
  els.attachment.addEventListener("change", attach);
}

/* What a question must wait for: files still uploading, documents still being read. */
export function pendingFiles() {
  return [...images, ...state.conversation.documents].filter((a) => a.state === "uploading" || isReading(a));
}

/* A line for the waiting question: what it waits for, with each document's progress. */
export function pendingLine() {
  return pendingFiles()
    .map((a) => a.name + " (" + fileLine(a) + ")")
    .join(", ");
}

/* What the next question sends: [{kind, fileId, name}], the next question's images and
 * every document of the conversation. A file that failed (or a document that could not be
 * read: the server refuses it) is left out; the list still shows why. */
export function readyFiles() {
  return [...images, ...state.conversation.documents]
    .filter((a) => a.state === "ready" && !(a.ingestion && a.ingestion.status === "failed"))
    .map((a) => ({ kind: a.kind, fileId: a.fileId, name: a.name }));
}

/* The question went out: the next one starts without images; documents stay. */
export function clearImages() {
  images = [];
  renderAttachments();
}
