"""Splitting extracted pages into passages that fit the embedder's window.

all-MiniLM-L6-v2 reads 256 word pieces (two of them [CLS] and [SEP]) and silently cuts
the rest, so a longer chunk would be embedded by its beginning only. Lengths are
counted with that model's own WordPiece tokenizer when it is installed (it splits at
least as finely as OpenAI's tokenizer, so a chunk that fits it fits OpenAI's window too),
and estimated from characters otherwise. Chunks never cross a page, so every passage has
one page to cite, and keep their character offsets into the page's text.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from agents.providers.embeddings import (
    LOCAL_EMBEDDING_MODEL,
    LOCAL_MAX_TOKENS,
    OPENAI_EMBEDDING_MODEL,
    local_tokenizer_path,
)
from files.extraction import Page

if TYPE_CHECKING:
    import tokenizers

# [CLS] and [SEP] take two places of the local model's window.
SPECIAL_TOKENS = 2
# text-embedding-3-small reads 8191 tokens, but a passage that long ranks badly (one
# vector for many topics) and fills the prompt: passages stay small whatever the model.
PREFERRED_CHUNK_TOKENS = 240
WINDOWS = {LOCAL_EMBEDDING_MODEL: LOCAL_MAX_TOKENS, OPENAI_EMBEDDING_MODEL: 8191}
# Tokens repeated at the start of the next chunk, so a fact cut by a boundary is whole in
# one of the two.
OVERLAP_TOKENS = 40
# Without the tokenizer: English averages about 4 characters per word piece; 3 is safe.
CHARS_PER_TOKEN_ESTIMATE = 3
# A sentence (ending in .!? before whitespace) or a line; "3.5" and "a.b" do not end one.
_SEGMENT = re.compile(r".*?(?:[.!?]+(?=\s)|\n|$)")


@dataclass(frozen=True)
class Chunk:
    page: int | None
    char_start: int
    char_end: int
    text: str


def chunk_tokens_for(model: str) -> int:
    """The most word pieces one chunk may hold for ``model``'s embeddings."""
    window = WINDOWS.get(model, LOCAL_MAX_TOKENS)
    return min(window - SPECIAL_TOKENS, PREFERRED_CHUNK_TOKENS)


_tokenizer_lock = threading.Lock()


@cache
def _tokenizer() -> tokenizers.Tokenizer | None:
    path = local_tokenizer_path()
    if path is None:
        return None
    import tokenizers

    with _tokenizer_lock:
        tokenizer = tokenizers.Tokenizer.from_file(str(path))
        tokenizer.no_truncation()
        tokenizer.no_padding()
    return tokenizer


def _token_spans(texts: list[str]) -> list[list[tuple[int, int]]]:
    """Each text's word pieces as character spans."""
    tokenizer = _tokenizer()
    if tokenizer is None:
        step = CHARS_PER_TOKEN_ESTIMATE
        return [[(i, min(i + step, len(t))) for i in range(0, len(t), step)] for t in texts]
    encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
    return [list(encoding.offsets) for encoding in encodings]


def _segments(text: str) -> Iterator[tuple[int, int]]:
    """Sentence-or-line spans of ``text``, whitespace-only ones left out."""
    for match in _SEGMENT.finditer(text):
        start, end = match.span()
        if text[start:end].strip():
            yield start, end


@dataclass
class _Piece:
    start: int
    end: int
    tokens: int


def _pieces(text: str, limit: int) -> list[_Piece]:
    """Segments with their token counts; a segment over ``limit`` is cut at token
    boundaries into parts of at most ``limit``."""
    spans = list(_segments(text))
    token_spans = _token_spans([text[start:end] for start, end in spans])
    pieces: list[_Piece] = []
    for (start, end), tokens in zip(spans, token_spans, strict=True):
        if len(tokens) <= limit:
            pieces.append(_Piece(start, end, len(tokens)))
            continue
        for first in range(0, len(tokens), limit):
            part = tokens[first : first + limit]
            part_end = end if first + limit >= len(tokens) else start + tokens[first + limit][0]
            pieces.append(_Piece(start + part[0][0], part_end, len(part)))
    return pieces


def _page_chunks(page: Page, limit: int, overlap: int) -> Iterator[Chunk]:
    text = page.text
    pieces = _pieces(text, limit)
    window: list[_Piece] = []
    total = 0

    def emit() -> Chunk:
        start, end = window[0].start, window[-1].end
        return Chunk(page=page.number, char_start=start, char_end=end, text=text[start:end].strip())

    for piece in pieces:
        if window and total + piece.tokens > limit:
            yield emit()
            # Carry the tail (up to `overlap` tokens) into the next chunk.
            carried: list[_Piece] = []
            carried_tokens = 0
            for previous in reversed(window):
                if carried_tokens + previous.tokens > overlap or (
                    carried_tokens + previous.tokens + piece.tokens > limit
                ):
                    break
                carried.insert(0, previous)
                carried_tokens += previous.tokens
            window, total = carried, carried_tokens
        window.append(piece)
        total += piece.tokens
    if window:
        yield emit()


def chunk_pages(pages: list[Page], *, model: str) -> Iterator[Chunk]:
    """The pages' passages, in document order, each within ``model``'s window."""
    limit = chunk_tokens_for(model)
    overlap = min(OVERLAP_TOKENS, limit // 4)
    for page in pages:
        yield from _page_chunks(page, limit, overlap)
