"""Hostile documents (issue 19: defects 4 and 10): each ends ``failed`` with a clear code
and a message saying what to do, never ``internal_error``, and none takes this process's
memory or time.

The bombs are made here. Memory is a behaviour bound, not a timing: the peak resident
size of this process (which runs the in-process ingestion thread) is reset after the bomb
is built and must not grow by anything near the bomb's size.
"""

from __future__ import annotations

import io
import re
import resource
import struct
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from files.extraction import DOCX, JSON_MAX_DEPTH, MB, ExtractionFailed, extract_pages
from files.extraction_process import CPU_LIMIT_MARGIN_S, extract_pages_isolated
from files.models import DocumentChunk
from tests.files.conftest import upload, wait_ingested
from tests.files.pdfs import make_docx

# Generous: the bombs below expand to 100 MB and more, an unguarded reader to gigabytes.
MAX_RSS_GROWTH_KB = 200 * 1024
BOMB_XML_MB = 100
PARAGRAPH = b"<w:p><w:r><w:t>bomb</w:t></w:r></w:p>"


def _status_kb(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE).group(1))


class _PeakMemory:
    """The growth of this process's peak resident size from now on."""

    def __init__(self) -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.field = "VmHWM"
        except OSError:  # not allowed here: the resident size after is the next best
            self.field = "VmRSS"
        self.before = _status_kb("VmRSS")

    def growth_kb(self) -> int:
        return _status_kb(self.field) - self.before


def docx_bomb(xml_mb: int = BOMB_XML_MB) -> bytes:
    """A real .docx whose word/document.xml is ``xml_mb`` MB of highly compressible XML
    (a few hundred KB zipped), written in pieces so making it never holds it all."""
    source = zipfile.ZipFile(io.BytesIO(make_docx(["A normal first paragraph."])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for member in source.infolist():
            data = source.read(member.filename)
            if member.filename != "word/document.xml":
                bomb.writestr(member.filename, data)
                continue
            head, tail = data.split(b"<w:body>")
            block = PARAGRAPH * 1000
            with bomb.open(member.filename, "w") as xml:
                xml.write(head + b"<w:body>")
                for _ in range(xml_mb * MB // len(block)):
                    xml.write(block)
                xml.write(tail)
    return out.getvalue()


def slow_pdf(operations: int) -> bytes:
    """A valid one-page PDF of a few KB whose page takes pypdf minutes to read (one text
    operator after another), without needing much memory early on."""
    content = zlib.compress(b"BT /F1 12 Tf " + b"(x) Tj " * operations + b"ET", 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content)
        + content
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return _pdf_file(objects)


def _pdf_file(objects: list[bytes]) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


def _child_pids() -> set[int]:
    pids: set[int] = set()
    for children in Path("/proc/self/task").glob("*/children"):
        pids.update(int(pid) for pid in children.read_text().split())
    return pids


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return docx_bomb()


def ingest(api, name: str, data: bytes, content_type: str) -> tuple[dict, int]:
    """The file's final metadata and how much this process's peak memory grew meanwhile."""
    peak = _PeakMemory()
    response = upload(api, name, data, content_type)
    assert response.status_code == 201, response.content
    done = wait_ingested(api, response.json()["file_id"])
    return done, peak.growth_kb()


def assert_failed(done: dict, code: str, *advice: str) -> None:
    ingestion = done["ingestion"]
    assert ingestion["status"] == "failed", ingestion
    assert ingestion["error"]["code"] == code, ingestion["error"]
    for words in advice:
        assert words in ingestion["error"]["message"], ingestion["error"]
    assert ingestion["chunks"] == 0
    assert not DocumentChunk.objects.filter(file_id=done["file_id"]).exists()


# ------------------------------------------------------------ through ingestion (the API)


@pytest.mark.django_db
@pytest.mark.usefixtures("in_process", "uploads")
class TestBombsEndFailedWithoutTakingTheProcess:
    def test_a_docx_bomb_is_refused_from_its_zip_directory(self, api, bomb):
        assert len(bomb) < MB  # 100 MB of XML in a small upload
        done, growth_kb = ingest(api, "bomb.docx", bomb, DOCX)
        assert_failed(done, "document_too_large", "DOCUMENT_MAX_UNZIPPED_MB", "100 MB")
        assert growth_kb < MAX_RSS_GROWTH_KB

    def test_a_docx_bomb_under_the_unzipped_limit_meets_the_memory_limit(self, api, bomb, settings):
        # Past the directory check, parsing 100 MB of XML needs far more than 256 MB: the
        # child dies of it, this process does not notice.
        settings.DOCUMENT_MAX_UNZIPPED_MB = 2 * BOMB_XML_MB
        settings.DOCUMENT_EXTRACT_MEMORY_MB = 256
        done, growth_kb = ingest(api, "bomb.docx", bomb, DOCX)
        assert_failed(done, "document_too_large", "DOCUMENT_EXTRACT_MEMORY_MB")
        assert growth_kb < MAX_RSS_GROWTH_KB

    def test_a_document_that_reads_forever_is_killed_at_the_deadline(self, api, settings):
        # Minutes of pypdf (and gigabytes, read in this process) for one page.
        settings.DOCUMENT_INGEST_TIMEOUT_S = 1.0
        settings.DOCUMENT_EXTRACT_MEMORY_MB = 1024
        done, growth_kb = ingest(api, "slow.pdf", slow_pdf(2_000_000), "application/pdf")
        assert_failed(done, "document_too_slow", "DOCUMENT_INGEST_TIMEOUT_S")
        assert growth_kb < MAX_RSS_GROWTH_KB

    def test_json_nested_5000_deep_is_too_deep(self, api):
        done, growth_kb = ingest(api, "deep.json", deep_json(5000), "application/json")
        assert_failed(done, "document_too_deep", f"deeper than {JSON_MAX_DEPTH} levels")
        assert growth_kb < MAX_RSS_GROWTH_KB

    def test_a_one_line_csv_of_9_9_mb_is_a_clear_csv_error(self, api):
        done, _ = ingest(api, "one-line.csv", b"a" * 9_900_000, "text/csv")
        assert_failed(done, "document_corrupt", "CSV", "quoted field is closed")

    def test_a_csv_row_that_expands_past_the_text_limit_is_too_large(self, api, settings):
        # Every row repeats the 100 KB header: 40 rows of "1" become 4 MB of text.
        settings.DOCUMENT_MAX_UNZIPPED_MB = 1
        data = b"h" * 100_000 + b"\n" + b"1\n" * 40
        done, _ = ingest(api, "wide.csv", data, "text/csv")
        assert_failed(done, "document_too_large", "DOCUMENT_MAX_UNZIPPED_MB")

    def test_text_that_cannot_be_utf8_encoded_is_stored(self, api):
        # A lone surrogate in JSON is valid JSON, but no UTF-8 text: it must not crash the
        # result's way back or the database.
        done, _ = ingest(api, "s.json", b'{"name": "broken \\ud800 text here"}', "application/json")
        assert done["ingestion"]["status"] == "ready", done["ingestion"]


# ------------------------------------------------------------ the sandbox on its own


def _isolated(data: bytes, content_type: str, **limits) -> list:
    return extract_pages_isolated(
        data=data,
        content_type=content_type,
        max_pages=limits.get("max_pages", 100),
        max_unzipped_bytes=limits.get("max_unzipped_bytes", 50 * MB),
        memory_mb=limits.get("memory_mb", 1024),
        deadline=time.monotonic() + limits.get("seconds", 120),
    )


def _reaped_children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_the_child_is_killed_and_reaped_at_the_deadline():
    before, cpu_before = _child_pids(), _reaped_children_cpu_s()
    with pytest.raises(ExtractionFailed) as failed:
        _isolated(slow_pdf(2_000_000), "application/pdf", seconds=1.0)
    assert failed.value.code == "document_too_slow"
    assert _child_pids() <= before  # nothing left running (or as a zombie)
    # Killed by the parent at the 1 s deadline (a single-threaded child uses at most 1 s
    # of CPU by then), not by its own CPU limit, the backstop for a child whose parent
    # died, which it would reach only after 1 + CPU_LIMIT_MARGIN_S seconds of CPU.
    assert _reaped_children_cpu_s() - cpu_before < 1 + CPU_LIMIT_MARGIN_S / 2


def test_a_child_out_of_memory_is_too_large():
    # Two million one-item lists: about 200 MB of Python objects from an 8 MB file.
    data = b"[" + b"[1]," * 2_000_000 + b"[1]]"
    with pytest.raises(ExtractionFailed) as failed:
        _isolated(data, "application/json", memory_mb=150)
    assert failed.value.code == "document_too_large"
    assert "DOCUMENT_EXTRACT_MEMORY_MB" in failed.value.message
    # The child itself fits in the limit: a small file of the same shape reads.
    [page] = _isolated(b"[[1], [2]]", "application/json", memory_mb=150)
    assert page.text == "[0][0]: 1\n[1][0]: 2"


def test_pages_and_numbers_come_back_from_the_child():
    from tests.files.pdfs import FACTS, facts_pdf

    pages = _isolated(facts_pdf(), "application/pdf")
    assert [page.number for page in pages] == [1, 2, 3, 4]
    for number, fact, _ in FACTS:
        assert fact in " ".join(pages[number - 1].text.split())
    [page] = _isolated("Grüße, naïve café ✓".encode(), "text/plain")
    assert page.number is None and page.text == "Grüße, naïve café ✓"


def test_a_child_failure_keeps_its_code_and_message():
    with pytest.raises(ExtractionFailed) as failed:
        _isolated(b"\xff\xfe\x00bad", "text/plain")
    assert failed.value.code == "document_not_utf8"
    assert "UTF-8" in failed.value.message


def test_a_deadline_already_passed_starts_no_child():
    before = _child_pids()
    with pytest.raises(ExtractionFailed) as failed:
        extract_pages_isolated(
            data=b"text",
            content_type="text/plain",
            max_pages=1,
            max_unzipped_bytes=MB,
            memory_mb=256,
            deadline=time.monotonic() - 1,
        )
    assert failed.value.code == "document_too_slow"
    assert _child_pids() <= before


# ------------------------------------------------------------ the readers' own bounds


def _extract(data: bytes, content_type: str, *, max_unzipped_bytes: int | None = 50 * MB):
    return extract_pages(
        data=data,
        content_type=content_type,
        max_pages=100,
        deadline=time.monotonic() + 600,
        max_unzipped_bytes=max_unzipped_bytes,
    )


def test_the_unzipped_limit_counts_every_member_before_parsing():
    document = make_docx(["Only a paragraph."])
    unzipped = sum(m.file_size for m in zipfile.ZipFile(io.BytesIO(document)).infolist())
    # At the limit it reads; one byte under it, it is refused.
    assert _extract(document, DOCX, max_unzipped_bytes=unzipped)[0].text == "Only a paragraph."
    with pytest.raises(ExtractionFailed) as failed:
        _extract(document, DOCX, max_unzipped_bytes=unzipped - 1)
    assert failed.value.code == "document_too_large"


def _lying_directory(bomb: bytes, claimed_size: int) -> bytes:
    """The bomb with its central directory claiming ``claimed_size`` bytes for
    document.xml (the local header and the deflate stream unchanged)."""
    data = bytearray(bomb)
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) != -1:
        name_length = struct.unpack_from("<H", data, start + 28)[0]
        if data[start + 46 : start + 46 + name_length] == b"word/document.xml":
            struct.pack_into("<I", data, start + 24, claimed_size)  # uncompressed size
            return bytes(data)
        start += 4
    raise AssertionError("no document.xml in the directory")


def test_a_lying_zip_directory_gains_nothing(bomb):
    # The directory says 1 KB; the deflate stream holds 100 MB. zipfile stops at the
    # directory's size and the CRC fails: the file is damaged, and little memory is used.
    liar = _lying_directory(bomb, 1000)
    peak = _PeakMemory()
    with pytest.raises(ExtractionFailed) as failed:
        _extract(liar, DOCX)
    assert failed.value.code == "document_corrupt"
    assert peak.growth_kb() < MAX_RSS_GROWTH_KB


def test_json_depth_limit_is_exact():
    assert _extract(deep_json(JSON_MAX_DEPTH), "application/json")[0].text == (
        "[0]" * JSON_MAX_DEPTH + ": 1"
    )
    with pytest.raises(ExtractionFailed) as failed:
        _extract(deep_json(JSON_MAX_DEPTH + 1), "application/json")
    assert failed.value.code == "document_too_deep"
    # Deeper than the JSON parser itself can go: the same answer, not a RecursionError.
    with pytest.raises(ExtractionFailed) as failed:
        _extract(deep_json(5000), "application/json")
    assert failed.value.code == "document_too_deep"


def test_json_key_paths_that_expand_past_the_text_limit_are_too_large():
    # One 100 KB key over 50 items: every item's line repeats the key, 5 MB in all.
    data = b'{"' + b"k" * 100_000 + b'": [' + b",".join([b"1"] * 50) + b"]}"
    with pytest.raises(ExtractionFailed) as failed:
        _extract(data, "application/json", max_unzipped_bytes=MB)
    assert failed.value.code == "document_too_large"
    assert "DOCUMENT_MAX_UNZIPPED_MB" in failed.value.message


def test_html_nested_5000_deep_still_reads():
    html = b"<div>" * 5000 + b"deep text" + b"</div>" * 5000
    assert _extract(html, "text/html")[0].text == "deep text"


def test_a_pdf_page_with_arrays_nested_5000_deep_is_corrupt():
    # In the page's content stream, where pypdf's reader recurses without catching it.
    content = b"BT /F1 12 Tf (hello) Tj " + b"[" * 5000 + b"]" * 5000 + b" TJ ET"
    pdf = _pdf_file(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
    )
    with pytest.raises(ExtractionFailed) as failed:
        _extract(pdf, "application/pdf")
    assert failed.value.code == "document_corrupt"
