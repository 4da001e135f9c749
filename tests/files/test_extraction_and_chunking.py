"""Extraction and chunking on their own: pages, offsets, the embedder's window, and every
way a file can fail to give text (each with a message that says what to do)."""

from __future__ import annotations

import time

import pytest

from agents.providers.embeddings import LOCAL_EMBEDDING_MODEL, LOCAL_MAX_TOKENS
from files.chunking import _tokenizer, chunk_pages, chunk_tokens_for
from files.extraction import DOCX, ExtractionFailed, Page, extract_pages
from tests.files.pdfs import FACTS, facts_pdf, make_image_only_pdf, make_pdf


def extract(data: bytes, content_type: str = "application/pdf", *, max_pages: int = 100):
    # The deadline is taken per call: one taken at import would expire before a long suite
    # reaches these tests.
    deadline = time.monotonic() + 600
    return extract_pages(
        data=data, content_type=content_type, max_pages=max_pages, deadline=deadline
    )


def test_pdf_text_comes_page_by_page_with_1_based_numbers():
    pages = extract(facts_pdf())
    assert [page.number for page in pages] == [1, 2, 3, 4]
    for number, fact, _ in FACTS:
        assert fact in " ".join(pages[number - 1].text.split())


@pytest.mark.parametrize(
    ("data", "code", "advice"),
    [
        (
            make_pdf(["Top secret plans."], user_password="hunter2"),
            "document_encrypted",
            "password",
        ),
        (b"%PDF-1.7\n1 0 obj <</Type /Catalog>> garbage", "document_corrupt", "save or print"),
        (make_image_only_pdf(), "document_no_text", "OCR"),
    ],
    ids=["encrypted", "corrupt", "image-only"],
)
def test_unreadable_pdfs_fail_with_advice(data, code, advice):
    with pytest.raises(ExtractionFailed) as failed:
        extract(data)
    assert failed.value.code == code
    assert advice in failed.value.message


def test_truncated_pdf_is_corrupt():
    with pytest.raises(ExtractionFailed) as failed:
        extract(facts_pdf()[:700])
    assert failed.value.code == "document_corrupt"


def test_page_limit_and_time_limit():
    with pytest.raises(ExtractionFailed) as failed:
        extract(make_pdf(["a"] * 3), max_pages=2)
    assert failed.value.code == "document_too_many_pages"
    assert "DOCUMENT_MAX_PAGES" in failed.value.message
    with pytest.raises(ExtractionFailed) as failed:
        extract_pages(
            data=facts_pdf(),
            content_type="application/pdf",
            max_pages=100,
            deadline=time.monotonic() - 1,
        )
    assert failed.value.code == "document_too_slow"


@pytest.mark.parametrize(
    ("data", "content_type", "code"),
    [
        (b"\xff\xfe\x00bad", "text/plain", "document_not_utf8"),
        (b'{"a": ', "application/json", "document_corrupt"),
        (b"PK\x03\x04 not really a docx", DOCX, "document_corrupt"),
        (b"   \n\n ", "text/markdown", "document_no_text"),
    ],
)
def test_broken_text_formats_fail_with_advice(data, content_type, code):
    with pytest.raises(ExtractionFailed) as failed:
        extract(data, content_type)
    assert failed.value.code == code


def test_chunks_fit_the_local_models_window_and_keep_their_offsets():
    sentence = "The quarterly figures for region {n} were reviewed by the committee in detail. "
    text = "".join(sentence.format(n=n) for n in range(400)) + "Unbroken" + "x" * 3000
    pages = [Page(number=7, text=text)]
    chunks = list(chunk_pages(pages, model=LOCAL_EMBEDDING_MODEL))
    limit = chunk_tokens_for(LOCAL_EMBEDDING_MODEL)
    assert limit <= LOCAL_MAX_TOKENS - 2
    tokenizer = _tokenizer()
    assert tokenizer is not None  # the local model's tokenizer is installed here
    for chunk in chunks:
        assert chunk.page == 7
        assert text[chunk.char_start : chunk.char_end].strip() == chunk.text
        assert len(tokenizer.encode(chunk.text, add_special_tokens=False).ids) <= limit
    # Nothing is lost: every region's sentence is in some chunk.
    joined = " ".join(chunk.text for chunk in chunks)
    assert all(f"region {n} " in joined for n in range(400))
    assert "x" * 100 in chunks[-1].text


def test_no_text_is_dropped_at_dots_that_do_not_end_a_sentence():
    text = "ferry.departs: 7:15\nversion 3.5 of a.b.c is out"
    [chunk] = chunk_pages([Page(number=None, text=text)], model=LOCAL_EMBEDDING_MODEL)
    assert chunk.text == text
