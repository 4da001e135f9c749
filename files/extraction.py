"""Text out of a stored document, page by page where the format has pages.

Every way a file can fail to give text ends in ``ExtractionFailed`` with a message that
tells the user what to do; the ingestion stores it as the file's error. Hostile files are
bounded here by what can be counted before and while reading: a ZIP's unpacked size from
its directory (DOCX) before anything is parsed, the text produced, JSON nesting, pypdf's
own output limits (75 MB per stream) and the per-file deadline, checked between pages.
What cannot be counted (memory inside a parser, one page that never ends) is bounded by
running all of this in a child process with OS limits (``files.extraction_process``).

This module imports no Django: the child process imports it on its own.
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

# Any text at all per page on average below this means a scan without a text layer.
MIN_CHARS_PER_PAGE = 5
# Deeper JSON is refused: real exports nest a few levels, each level lengthens every key
# path below it, and the JSON parser itself recurses (about 1,000 levels crash it).
JSON_MAX_DEPTH = 100
MB = 1024 * 1024
TEXT = "The document's text"
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


def too_slow() -> ExtractionFailed:
    return ExtractionFailed(
        "Reading the file took longer than the per-file limit "
        "(DOCUMENT_INGEST_TIMEOUT_S); split it into smaller files and upload them.",
        code="document_too_slow",
    )


def _check_time(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise too_slow()


def too_large(max_bytes: int, what: str) -> ExtractionFailed:
    return ExtractionFailed(
        f"{what} comes to more than {max_bytes // MB} MB once unpacked "
        "(DOCUMENT_MAX_UNZIPPED_MB); split it into smaller files and upload them.",
        code="document_too_large",
    )


class _TextBudget:
    """Counts the text a reader produces, so one that expands its input (a CSV row
    repeats every column name, a JSON leaf its whole key path) stops at the limit
    instead of after it has filled the memory. All text passes through ``take``."""

    def __init__(self, max_chars: int | None) -> None:
        self.max_chars = max_chars
        self.used = 0

    def take(self, text: str) -> str:
        self.used += len(text)
        if self.max_chars is not None and self.used > self.max_chars:
            raise too_large(self.max_chars, TEXT)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates (JSON "\ud800", broken PDF fonts) cannot be stored or sent
            # as UTF-8, which the database, the embedder and the child's result need.
            text = text.encode("utf-8", "replace").decode("utf-8")
        return text


def _too_many_pages(pages: int, max_pages: int) -> ExtractionFailed:
    return ExtractionFailed(
        f"The document has {pages} pages; the limit is {max_pages} (DOCUMENT_MAX_PAGES). "
        "Split it and upload the parts.",
        code="document_too_many_pages",
    )


def _pdf_pages(data: bytes, *, max_pages: int, deadline: float, budget: _TextBudget) -> list[Page]:
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
            pages.append(Page(number=number, text=budget.take(page.extract_text() or "")))
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
    except (
        PyPdfError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RecursionError,  # e.g. arrays nested thousands deep in a page's content stream
    ):
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


def _csv_text(text: str, budget: _TextBudget) -> str:
    # One line per row, "header: value" pairs: a row then reads as a sentence to the
    # embedder and to the model, with its column names.
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if header is None:
            return ""
        lines = []
        for row in reader:
            pairs = [f"{name}: {value}" for name, value in zip(header, row, strict=False) if value]
            lines.append(budget.take("; ".join(pairs)))
    except csv.Error as exc:
        # Nearly always a quote that is never closed: the rest of the file becomes one
        # field, larger than the csv module's field limit (128 KB).
        raise ExtractionFailed(
            f"The CSV cannot be read (line {reader.line_num}: {exc}). Check that every quoted "
            'field is closed (a stray " makes the rest of the file one field) and that it is '
            "comma-separated; or upload it as .txt.",
            code="document_corrupt",
        ) from None
    if not lines:
        return budget.take(", ".join(header))
    return "\n".join(lines)


def _too_deep() -> ExtractionFailed:
    return ExtractionFailed(
        f"The JSON is nested deeper than {JSON_MAX_DEPTH} levels; flatten it (or export it "
        "as CSV) and upload it again.",
        code="document_too_deep",
    )


def _json_lines(value: object) -> Iterator[str]:
    # An explicit stack, not recursion: the depth is checked, never the interpreter's.
    stack: list[tuple[object, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= JSON_MAX_DEPTH:
                raise _too_deep()
            children = (
                [(v, f"{path}.{k}" if path else str(k)) for k, v in item.items()]
                if isinstance(item, dict)
                else [(v, f"{path}[{position}]") for position, v in enumerate(item)]
            )
            stack.extend((child, name, depth + 1) for child, name in reversed(children))
        else:
            yield f"{path}: {item}" if path else str(item)


def _json_text(text: str, budget: _TextBudget) -> str:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExtractionFailed(
            f"The JSON is invalid ({exc.msg} at line {exc.lineno}); fix it and upload it again.",
            code="document_corrupt",
        ) from None
    except RecursionError:
        raise _too_deep() from None
    return "\n".join(budget.take(line) for line in _json_lines(value))


def _html_text(text: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for hidden in soup(["script", "style", "noscript", "template", "head"]):
        hidden.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)


def _check_unzipped_size(data: bytes, max_bytes: int) -> None:
    """Refuse a ZIP whose members add up to more than ``max_bytes``, from its directory
    alone, before any member is unpacked.

    A directory that lies (small sizes, big deflate streams) gains nothing: ``zipfile``
    never returns more than a member's directory size, and fails its CRC check instead.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unzipped = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, ValueError, EOFError):
        return  # not readable as a ZIP at all: the reader says so with its own advice
    if unzipped > max_bytes:
        raise ExtractionFailed(
            f"The file unpacks to {unzipped // MB} MB; the limit is {max_bytes // MB} MB "
            "(DOCUMENT_MAX_UNZIPPED_MB). Remove large embedded pictures or objects, or split "
            "it into smaller files, and upload them.",
            code="document_too_large",
        )


def _docx_damaged() -> ExtractionFailed:
    return ExtractionFailed(
        "The Word document is damaged and cannot be read. Open it in Word or LibreOffice, "
        "save it again as .docx, and upload that.",
        code="document_corrupt",
    )


def _docx_text(data: bytes) -> str:
    import docx
    from docx.opc.exceptions import OpcError
    from lxml.etree import ErrorTypes, LxmlError

    try:
        document = docx.Document(io.BytesIO(data))
    except LxmlError as exc:
        if getattr(exc, "code", None) == ErrorTypes.ERR_NO_MEMORY:
            # libxml2 reports a failed allocation as a syntax error ("unknown error").
            raise MemoryError from None
        raise _docx_damaged() from None  # malformed XML, or nested past lxml's depth limit
    except (
        zipfile.BadZipFile,
        OpcError,
        KeyError,
        ValueError,
        EOFError,
        NotImplementedError,  # a compression method zipfile does not support
        RuntimeError,  # an encrypted member
    ):
        raise _docx_damaged() from None
    parts = [paragraph.text for paragraph in document.paragraphs if paragraph.text.strip()]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text.strip() for cell in row.cells))
    return "\n".join(parts)


def extract_pages(
    *,
    data: bytes,
    content_type: str,
    max_pages: int,
    deadline: float,
    max_unzipped_bytes: int | None = None,
) -> list[Page]:
    """The document's text, one Page per page (PDF) or one Page without a number.

    ``deadline`` is a ``time.monotonic()`` value. ``max_unzipped_bytes`` bounds both a
    ZIP's unpacked size and the text produced (None: no bound, for callers that trust the
    file). Runs in the calling process: ingestion goes through
    ``files.extraction_process.extract_pages_isolated`` instead. Raises ExtractionFailed.
    """
    budget = _TextBudget(max_unzipped_bytes)
    if content_type == "application/pdf":
        return _pdf_pages(data, max_pages=max_pages, deadline=deadline, budget=budget)
    if content_type == DOCX:
        if max_unzipped_bytes is not None:
            _check_unzipped_size(data, max_unzipped_bytes)
        text = budget.take(_docx_text(data))
    else:
        text = _decoded(data)
        if content_type == "text/csv":
            text = _csv_text(text, budget)
        elif content_type == "application/json":
            text = _json_text(text, budget)
        elif content_type == "text/html":
            text = budget.take(_html_text(text))
        else:
            text = budget.take(text)
    _check_time(deadline)
    if not text.strip():
        raise ExtractionFailed(
            "The file has no text to search. Upload a file with text in it.",
            code="document_no_text",
        )
    return [Page(number=None, text=text)]
