"""Writes for uploads: validate, store the bytes in the uploads storage, record the metadata,
and hand documents to ingestion.

Documents (PDF, text, Markdown, CSV, JSON, HTML, DOCX) are stored ``pending`` and queued
for ingestion (``files.ingestion``, run in the background by the dispatcher); images are
stored for vision and never ingested.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from pathlib import PurePosixPath
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone

from files.charges import Payer, budget_check_left, payer_for
from files.extraction import DOCUMENT_TYPES, DOCX
from files.ingestion import document_requeue
from files.models import DocumentChunk, File
from files.storage import upload_storage
from files.storage_quota import storage_check
from llmplatform.core.dispatch import dispatcher
from llmplatform.core.errors import ApplicationError
from llmplatform.core.models import ApiKey

INGEST_TASK = "files.ingest_document"

# What the VisionAgent and document ingestion can use; anything else is refused up front.
ALLOWED_TYPES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (),  # RIFF....WEBP, checked in _check_content
    "application/pdf": (b"%PDF-",),
    "text/plain": (),
    "text/markdown": (),
    "text/csv": (),
    "application/json": (),
    "text/html": (),  # served only as an attachment, never rendered (file_download_headers)
    DOCX: (b"PK\x03\x04",),  # a ZIP container; python-docx checks the rest
}
EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/csv": ".csv",
    "application/json": ".json",
    "text/html": ".html",
    DOCX: ".docx",
}
MAX_FILENAME = 255
# What a browser would render or run if the bytes were ever served inline: refused in
# text uploads, whatever type the client declared.
_ACTIVE_MARKUP = re.compile(
    rb"<\s*(!doctype|html|head|body|script|svg|iframe|object|embed|meta|link|style|xml|\?xml)\b",
    re.IGNORECASE,
)
# Declared by clients that do not know the type: decided by the content instead.
UNDECLARED_TYPES = {"", "application/octet-stream"}
# Served inline by the download route; everything else as an attachment.
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"}
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._ \-()\[\]]+")


def sniff_content_type(head: bytes) -> str | None:
    """The accepted type the first bytes show, or None (text types are not told apart)."""
    for content_type, signatures in ALLOWED_TYPES.items():
        if signatures and any(head.startswith(signature) for signature in signatures):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _check_content(head: bytes, content_type: str) -> bool:
    if content_type == "image/webp":
        # RIFF is also WAV and AVI: the format name follows the chunk size.
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    signatures = ALLOWED_TYPES[content_type]
    if signatures:
        return any(head.startswith(signature) for signature in signatures)
    if content_type == "text/html":
        # Markup is the point of an HTML document; it is never served inline.
        return sniff_content_type(head) is None and _utf8_head(head)
    if sniff_content_type(head) is not None or _ACTIVE_MARKUP.search(head):
        return False  # an image, a PDF, or HTML/SVG declared as text
    return _utf8_head(head)


def _utf8_head(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The 512-byte head may end inside a multi-byte character.
        return exc.start >= len(head) - 3
    return True


def file_check(*, upload: UploadedFile) -> str:
    """The upload's content type, once size, type and content are acceptable.

    Raises ApplicationError (413 too large, 415 type not accepted or content mismatch).
    """
    if upload.size is not None and upload.size > settings.MAX_FILE_SIZE:
        raise ApplicationError(
            f"The file is {upload.size} bytes; the limit is {settings.MAX_FILE_SIZE} bytes "
            "(MAX_FILE_SIZE).",
            code="file_too_large",
            status=413,
        )
    head = upload.read(512)
    upload.seek(0)
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    if content_type in UNDECLARED_TYPES:
        content_type = sniff_content_type(head) or (
            "text/plain" if _check_content(head, "text/plain") else ""
        )
    if content_type not in ALLOWED_TYPES:
        raise ApplicationError(
            f"Files of type {content_type or 'unknown'!r} are not accepted. Allowed: "
            + ", ".join(sorted(ALLOWED_TYPES)),
            code="unsupported_file_type",
            status=415,
        )
    if not _check_content(head, content_type):
        raise ApplicationError(
            f"The file's content does not look like {content_type}.",
            code="file_content_mismatch",
            status=415,
        )
    return content_type


def file_upload(
    *, owner: User, user_id: str, upload: UploadedFile, payer: Payer | None = None
) -> File:
    """Validate and store an upload; a document is stored ``pending`` ingestion.

    ``payer`` (the uploading key, or the account for the chat UI) is recorded as who pays
    for the ingestion; its storage limit applies, and a document is refused up front when
    its budget is used up. Raises ApplicationError (413 too large or over the storage
    quota, 415 bad type, 429 budget used up).
    """
    content_type = file_check(upload=upload)
    is_document = content_type in DOCUMENT_TYPES
    if payer is not None:
        if is_document:
            budget_check_left(payer=payer)
        storage_check(
            owner_id=owner.pk,
            payer=payer,
            adding=upload.size or 0,
            what="this upload",
        )
    name = str(
        PurePosixPath(str(owner.pk))
        / user_id_safe(user_id)
        / (secrets.token_hex(16) + EXTENSIONS[content_type])
    )
    digest = hashlib.sha256()
    size = 0
    for chunk in upload.chunks():
        size += len(chunk)
        digest.update(chunk)
    upload.seek(0)
    # The name is random, so the storage never renames it; kept as the storage returns it.
    stored_name = upload_storage().save(name, upload)
    return File.objects.create(
        owner=owner,
        api_key=None if payer is None else payer.api_key,
        user_id=user_id,
        filename=safe_filename(upload.name, content_type=content_type),
        content_type=content_type,
        size=size,
        sha256=digest.hexdigest(),
        storage_path=stored_name,
        ingestion_status=File.Ingestion.PENDING if is_document else File.Ingestion.NONE,
        ingestion_queued_at=timezone.now() if is_document else None,
    )


def document_ingest_queue(*, file: File) -> None:
    """Hand a ``pending`` document to the background (Celery, or this process's background
    thread in the embedded default). Raises nothing it can avoid."""
    if file.ingestion_status == File.Ingestion.PENDING:
        dispatcher().submit_background(INGEST_TASK, str(file.pk))


def document_upload(
    *, owner: User, user_id: str, upload: UploadedFile, api_key: ApiKey | None = None
) -> File:
    """Store an upload; a document is queued for ingestion (upload never waits for it).

    Its ingestion is charged to ``api_key`` (none: the owner's account), whose storage
    quota applies. Raises ApplicationError (413 too large or over the storage quota, 415,
    429 budget used up).
    """
    payer = payer_for(owner=owner, api_key=api_key, user_id=user_id)
    stored = file_upload(owner=owner, user_id=user_id, upload=upload, payer=payer)
    document_ingest_queue(file=stored)
    return stored


def document_reingest(*, file: File) -> File:
    """Ingest a document again (after a failure, or to re-embed); images are left alone.
    Raises nothing."""
    requeued = document_requeue(file=file)
    document_ingest_queue(file=requeued)
    return requeued


def safe_filename(name: str | None, *, content_type: str) -> str:
    """A display name that is safe to store and to send back in Content-Disposition.

    No directories, control or exotic characters, and an extension that matches the
    content (``x.html`` holding a PNG becomes ``x.png``).
    """
    base = unicodedata.normalize("NFKC", (name or "").replace("\\", "/")).rsplit("/", 1)[-1]
    stem = PurePosixPath(_UNSAFE_NAME_CHARS.sub("_", base)).stem.strip(" ._") or "upload"
    extension = EXTENSIONS[content_type]
    return stem[: MAX_FILENAME - len(extension)] + extension


def file_download_headers(*, file: File) -> dict[str, str]:
    """Headers for serving a stored file: its checked type, never sniffed by the browser;
    images and PDFs inline, everything else as a download."""
    disposition = "inline" if file.content_type in INLINE_TYPES else "attachment"
    return {
        "Content-Type": file.content_type,
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(file.filename)}",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }


def user_id_safe(user_id: str) -> str:
    """A directory name for ``user_id`` that cannot escape the storage's root."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:24]


def file_open(*, file: File):
    """The file's stored bytes, opened for reading (the caller streams and closes them).
    Raises ApplicationError 410 ``file_content_missing`` when they are gone."""
    try:
        return upload_storage().open(file.storage_path, "rb")
    except OSError:
        raise ApplicationError(
            f"The bytes of {file.filename!r} are no longer stored; upload it again.",
            code="file_content_missing",
            status=410,
        ) from None


def file_delete(*, file: File) -> None:
    """Delete the chunks with their vectors, the metadata and the bytes.

    Chunks go first: once they are gone no search or answer can see the file, whatever
    a cached matrix still holds (stores check every hit against the collection). Raises
    nothing (missing bytes are ignored).
    """
    DocumentChunk.objects.filter(file_id=file.pk).delete()
    upload_storage().delete(file.storage_path)
    file.delete()
