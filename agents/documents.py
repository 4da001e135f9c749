"""DocumentsAgent: passages of the end user's documents for the prompt, and their citations.

It runs when the request names documents (``documents``: those files only) or asks for
``use_documents`` (every ready document of the end user), after the MemoryAgent, and
shares the query's embedding with it. Passages and conversation memory then share one
budget of prompt tokens: passages first (the user asked about them), best first, then
as much memory as still fits.

Sources say what the answer relied on: after the writer, the passages the answer cites
by number (``[2]``) come first, marked ``cited``; the other passages are listed after
them, uncited ("also searched"), only when they reach SOURCE_MIN_SCORE: a named document's
unrelated pages are still shown to the model (the user chose the document) but are not
offered as sources.
"""

from __future__ import annotations

import re

from agents.memory import embed_query
from agents.ports import DocumentPassage, Ports
from agents.providers.base import Citation
from agents.state import RunState
from llmplatform.core import tracing

NAME = "DocumentsAgent"
TOP_K = 5
# Searching every document (use_documents): below this cosine a passage is noise. Named
# documents are the user's explicit choice, so their best passages always reach the model.
MIN_SCORE = 0.2
# An uncited passage is offered as a source ("also searched") only from this cosine up:
# with all-MiniLM-L6-v2 a page on another subject scores up to about 0.2 ("Soup of the
# day" under "What is the company mascot?": 0.20), a page that answers 0.6 or more.
SOURCE_MIN_SCORE = 0.3
# A passage the answer cites: "[2]", "[1, 3]" (and each of "[1][3]").
_CITED = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
# Prompt tokens that retrieved context (passages + memory) may take.
CONTEXT_BUDGET_TOKENS = 2000
# A rough, conservative count: English averages about 4 characters per token.
CHARS_PER_TOKEN = 4
SNIPPET_CHARS = 280


def wanted(state: RunState) -> bool:
    return bool(state.documents) or state.use_documents


def add_to_route(state: RunState) -> None:
    """Put the agent right after memory (or first), when the request asks for documents."""
    if not wanted(state) or NAME in state.route:
        return
    after = state.route.index("MemoryAgent") + 1 if "MemoryAgent" in state.route else 0
    state.route.insert(after, NAME)


def _tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
_WORD = re.compile(r"[a-z0-9]{3,}")
_STOPWORDS = frozenset(
    {
        "the",
        "and",
        "for",
        "are",
        "was",
        "were",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "does",
        "did",
        "this",
        "that",
        "these",
        "those",
        "with",
        "from",
        "into",
        "about",
        "there",
        "their",
        "they",
        "them",
        "you",
        "your",
        "our",
        "has",
        "have",
        "had",
        "its",
        "not",
        "but",
        "can",
        "will",
        "would",
        "should",
        "could",
    }
)
# Words compared by their first letters: "named" meets "name", "vacations" "vacation".
_STEM = 5


def _stems(text: str) -> set[str]:
    return {w[:_STEM] for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def passage_snippet(text: str, question: str) -> str:
    """At most SNIPPET_CHARS of the passage, around the sentence that best shares the
    question's words (a passage often starts with text the question is not about).

    Words found in many of the passage's sentences count less, as in tf-idf: "company"
    in a company handbook tells nothing about where the answer is.
    """
    flat = " ".join(text.split())
    if len(flat) <= SNIPPET_CHARS:
        return flat
    sentences = [m.group().strip() for m in _SENTENCE.finditer(flat) if m.group().strip()]
    words = [_stems(sentence) for sentence in sentences]
    asked = _stems(question)

    def weight(index: int) -> float:
        return sum(1.0 / sum(stem in other for other in words) for stem in asked & words[index])

    best = max(range(len(sentences)), key=lambda index: (weight(index), -index))
    start = flat.find(sentences[best])
    # A little of what comes before, for context, then as much as fits.
    start = max(0, min(start - SNIPPET_CHARS // 6, len(flat) - SNIPPET_CHARS))
    end = start + SNIPPET_CHARS - 2
    return ("…" if start > 0 else "") + flat[start:end].strip() + ("…" if end < len(flat) else "")


def fit_context(
    passages: list[DocumentPassage], memory_items: list[dict[str, object]], budget: int
) -> tuple[list[DocumentPassage], list[dict[str, object]]]:
    """The passages, then the memory items, that fit ``budget`` tokens, in their order.

    The best passage is always kept (cut to the budget if it alone is larger), so a
    question about a document is never answered without it.
    """
    kept: list[DocumentPassage] = []
    used = 0
    for passage in passages:
        cost = _tokens(passage.text)
        if used + cost > budget:
            if not kept:
                kept.append(
                    DocumentPassage(
                        **{**passage.__dict__, "text": passage.text[: budget * CHARS_PER_TOKEN]}
                    )
                )
                used = budget
            continue
        kept.append(passage)
        used += cost
    memory: list[dict[str, object]] = []
    for item in memory_items:
        cost = _tokens(f"{item.get('query', '')} {item.get('response', '')}")
        if used + cost > budget:
            continue
        memory.append(item)
        used += cost
    return kept, memory


def citation(passage: DocumentPassage, question: str, *, cited: bool = False) -> Citation:
    return Citation(
        type="document",
        url=f"/api/v1/files/{passage.file_id}/content",
        title=passage.title,
        file_id=passage.file_id,
        page=passage.page,
        snippet=passage_snippet(passage.text, question),
        cited=cited,
    )


def cited_numbers(answer: str, count: int) -> list[int]:
    """The passage numbers (1 to ``count``) the answer cites, in the order first cited."""
    numbers: list[int] = []
    for match in _CITED.finditer(answer):
        for part in match.group(1).split(","):
            number = int(part)
            if 1 <= number <= count and number not in numbers:
                numbers.append(number)
    return numbers


def order_sources(state: RunState) -> None:
    """After the writer: the document sources the answer cites first (``cited``), in the
    order it cites them, one per file and page; then the rest as they were."""
    if not state.document_passages:
        return
    relied: list[Citation] = []
    seen: set[tuple[str, int | None]] = set()
    for number in cited_numbers(state.response, len(state.document_passages)):
        passage = state.document_passages[number - 1]
        if (passage["file_id"], passage["page"]) in seen:
            continue
        seen.add((passage["file_id"], passage["page"]))
        relied.append(citation(DocumentPassage(chunk_id="", **passage), state.text, cited=True))
    others = [c for c in state.citations if c.type != "document" or (c.file_id, c.page) not in seen]
    state.citations = relied + others


async def run(state: RunState, ports: Ports) -> None:
    if state.embedding is None and not await embed_query(state):
        return
    assert state.embedding is not None
    with tracing.span("documents.search"):
        found = await ports.documents.search(
            state.scope,
            vector=state.embedding,
            embedding_model=state.embedding_model,
            file_ids=list(state.documents) or None,
            limit=TOP_K,
            text=state.text,
        )
    if not state.documents:
        found = [passage for passage in found if passage.score >= MIN_SCORE]
    passages, state.memory_items = fit_context(found, state.memory_items, CONTEXT_BUDGET_TOKENS)
    state.document_passages = [
        {
            "file_id": p.file_id,
            "title": p.title,
            "page": p.page,
            "text": p.text,
            "score": round(p.score, 4),
        }
        for p in passages
    ]
    tracing.annotate(
        llmplatform__passages_found=len(found), llmplatform__passages_used=len(passages)
    )
    if tracing.content_enabled():
        used = [f"[{p.title} p.{p.page}] {p.text}" for p in passages]
        tracing.record_content(tracing.current_span(), "llmplatform.passages", "\n\n".join(used))
    # One citation per file and page, in the order the passages rank; uncited until the
    # answer says otherwise (order_sources), so only those above the floor.
    seen: set[tuple[str, int | None]] = set()
    for passage in passages:
        if passage.score >= SOURCE_MIN_SCORE and (passage.file_id, passage.page) not in seen:
            seen.add((passage.file_id, passage.page))
            state.citations.append(citation(passage, state.text))
