"""Text out of a stored document, page by page where the format has pages.

Every way a file can fail to give text ends in ``ExtractionFailed`` with a message that
tells the user what to do; the ingestion stores it as the file's error. pypdf's own
output limits (75 MB per stream) and the per-file deadline, checked between pages, stop
decompression bombs.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

# Any text at all per page on average below this means a scan without a text layer.
MIN_CHARS_PER_PAGE = 5
DOCUMENT_TYPES = frozenset(
    {
        "application/pdf",
        "text/plain",
        "text/markdown",
        "text/csv",
        "application/json",
        "text/html",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }
)
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@dataclass(frozen=True)
class Page:
    # 1-based for paginated formats (PDF); None for formats without pages.
    number: int | None
    text: str


class ExtractionFailed(Exception):
    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _check_time(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise ExtractionFailed(
            "Reading the file took longer than the per-file limit "
            "(DOCUMENT_INGEST_TIMEOUT_S); split it into smaller files and upload them.",
            code="document_too_slow",
        )


def _too_many_pages(pages: int, max_pages: int) -> ExtractionFailed:
    return ExtractionFailed(
        f"The document has {pages} pages; the limit is {max_pages} (DOCUMENT_MAX_PAGES). "
        "Split it and upload the parts.",
        code="document_too_many_pages",
    )


def _pdf_pages(data: bytes, *, max_pages: int, deadline: float) -> list[Page]:
    import pypdf
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PyPdfError

    broken = ExtractionFailed(
        "The PDF is damaged and cannot be read. Open it in a PDF viewer, save or print it "
        "as a new PDF, and upload that.",
        code="document_corrupt",
    )
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password (printing limits only).
            try:
                decrypted = reader.decrypt("")
            except (PyPdfError, NotImplementedError, ValueError):
                decrypted = 0
            if not decrypted:
                raise ExtractionFailed(
                    "The PDF is password-protected. Remove the password (print or export it "
                    "to a new PDF without one) and upload it again.",
                    code="document_encrypted",
                )
        count = len(reader.pages)
        if count > max_pages:
            raise _too_many_pages(count, max_pages)
        pages: list[Page] = []
        for number, page in enumerate(reader.pages, start=1):
            _check_time(deadline)
            pages.append(Page(number=number, text=page.extract_text() or ""))
    except FileNotDecryptedError:
        raise ExtractionFailed(
            "The PDF is password-protected. Remove the password and upload it again.",
            code="document_encrypted",
        ) from None
    except LimitReachedError:
        raise ExtractionFailed(
            "The PDF expands to more data than is allowed (a decompression bomb, or "
            "enormous embedded content); export it again without it and upload that.",
            code="document_too_large",
        ) from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        # pypdf reports broken structure through a mix of its own and built-in errors.
        raise broken from None
    if not pages:
        raise broken
    if sum(len(page.text.strip()) for page in pages) < MIN_CHARS_PER_PAGE * len(pages):
        raise ExtractionFailed(
            "The PDF has no text layer (it looks scanned or made of images). Run OCR on it "
            '(e.g. `ocrmypdf in.pdf out.pdf`, or your scanner\'s "searchable PDF" option) and '
            "upload the result.",
            code="document_no_text",
        )
    return pages


def _decoded(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ExtractionFailed(
            "The file is not UTF-8 text. Save it as UTF-8 and upload it again.",
            code="document_not_utf8",
        ) from None


def _csv_text(text: str) -> str:
    # One line per row, "header: value" pairs: a row then reads as a sentence to the
    # embedder and to the model, with its column names.
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return ""
    header, body = rows[0], rows[1:]
    if not body:
        return ", ".join(header)
    lines = []
    for row in body:
        pairs = [f"{name}: {value}" for name, value in zip(header, row, strict=False) if value]
        lines.append("; ".join(pairs))
    return "\n".join(lines)


def _json_lines(value: object, path: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_lines(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _json_lines(item, f"{path}[{position}]")
    else:
        yield f"{path}: {value}" if path else str(value)


def _json_text(text: str) -> str:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExtractionFailed(
            f"The JSON is invalid ({exc.msg} at line {exc.lineno}); fix it and upload it again.",
            code="document_corrupt",
        ) from None
    return "\n".join(_json_lines(value))


def _html_text(text: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for hidden in soup(["script", "style", "noscript", "template", "head"]):
        hidden.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)


def _docx_text(data: bytes) -> str:
    import zipfile

    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError):
        raise ExtractionFailed(
            "The Word document is damaged and cannot be read. Open it in Word or LibreOffice, "
            "save it again as .docx, and upload that.",
            code="document_corrupt",
        ) from None
    parts = [paragraph.text for paragraph in document.paragraphs if paragraph.text.strip()]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text.strip() for cell in row.cells))
    return "\n".join(parts)


def extract_pages(*, data: bytes, content_type: str, max_pages: int, deadline: float) -> list[Page]:
    """The document's text, one Page per page (PDF) or one Page without a number.

    ``deadline`` is a ``time.monotonic()`` value. Raises ExtractionFailed.
    """
    if content_type == "application/pdf":
        return _pdf_pages(data, max_pages=max_pages, deadline=deadline)
    if content_type == DOCX:
        text = _docx_text(data)
    else:
        text = _decoded(data)
        if content_type == "text/csv":
            text = _csv_text(text)
        elif content_type == "application/json":
            text = _json_text(text)
        elif content_type == "text/html":
            text = _html_text(text)
    _check_time(deadline)
    if not text.strip():
        raise ExtractionFailed(
            "The file has no text to search. Upload a file with text in it.",
            code="document_no_text",
        )
    return [Page(number=None, text=text)]
