"""Documents the tests generate: PDFs with known facts on known pages, and other formats."""

from __future__ import annotations

import io
import struct
import zlib

from fpdf import FPDF


def make_pdf(pages: list[str], *, user_password: str | None = None) -> bytes:
    """A real PDF (fpdf2) with one page per text, in order; encrypted when a password is
    given."""
    document = FPDF()
    document.set_font("helvetica", size=11)
    for text in pages:
        document.add_page()
        document.multi_cell(0, 6, text)
    if user_password is not None:
        document.set_encryption(
            owner_password="owner-" + user_password, user_password=user_password
        )
    return bytes(document.output())


def _png(width: int = 64, height: int = 64) -> bytes:
    raw = b"".join(b"\x00" + bytes([200, 30, 30]) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_image_only_pdf(pages: int = 2) -> bytes:
    """What a scanner makes: pages that are pictures, with no text layer."""
    document = FPDF()
    for _ in range(pages):
        document.add_page()
        document.image(io.BytesIO(_png()), x=10, y=10, w=150)
    return bytes(document.output())


def make_docx(paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


# Filler that reads like a document, so the planted facts are not the only text.
FILLER = (
    "This section reviews the quarterly operations of the company in general terms. "
    "Teams met their routine objectives and the schedule stayed broadly on track. "
)

# (page, fact, question): each fact is planted on its page of FACTS_PDF.
FACTS = [
    (
        1,
        "The vault access code for the Lisbon office is 4711.",
        "What is the vault code in Lisbon?",
    ),
    (
        2,
        "Our mascot is a purple axolotl named Bartholomew.",
        "What is the name of the company mascot?",
    ),
    (
        3,
        "The annual rowing regatta takes place on Lake Bled every September.",
        "Where is the rowing regatta held?",
    ),
    (
        4,
        "Employees receive 31 days of paid vacation per year.",
        "How many vacation days do employees get?",
    ),
]


def facts_pdf() -> bytes:
    return make_pdf([FILLER * 3 + fact + " " + FILLER for _, fact, _ in FACTS])
