"""Retrieval by meaning and by words (files.hybrid_search, files.lexical_index), with the
real local embedder: passages and past questions that differ only in a part code, a
name or a number are told apart, each signal can be switched off, and a deleted row never
comes back through the words."""

from __future__ import annotations

import math
import random

import pytest
from bson import ObjectId

from agents.ports import Scope
from agents.providers.embeddings import get_embedder
from files.document_store import search_chunks
from files.lexical_index import LexicalIndex, text_terms
from files.models import DocumentChunk, File
from files.vector_cache import clear_vector_cache
from llmplatform.core.bridge import run_sync
from queries.memory_store import similar_query_rows
from queries.models import Query

rng = random.Random(5)
CODES = [f"{rng.choice(['XK', 'PV', 'RT', 'MB'])}-{rng.randint(1000, 9999)}" for _ in range(40)]
PASSAGES = [
    f"Spare part {code} is a centrifugal pump seal rated for {rng.randint(20, 90)} bar "
    f"and stocked in warehouse {rng.randint(1, 9)}."
    for code in CODES
]
QUESTIONS = [f"What pressure is part {code} rated for?" for code in CODES]


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_vector_cache()
    yield
    clear_vector_cache()


@pytest.fixture(scope="module")
def vectors():
    embedder = get_embedder()
    return embedder.model, run_sync(embedder.embed(PASSAGES)), run_sync(embedder.embed(QUESTIONS))


def _catalogue(owner, model: str, embeddings) -> tuple[File, list[DocumentChunk]]:
    file = File.objects.create(
        owner=owner,
        user_id="u1",
        filename="parts.txt",
        content_type="text/plain",
        size=1,
        sha256="0" * 64,
        storage_path="parts.txt",
        ingestion_status="ready",
        embedding_model=model,
    )
    chunks = DocumentChunk.objects.bulk_create(
        DocumentChunk(
            owner=owner,
            user_id="u1",
            file=file,
            index=i,
            char_start=0,
            char_end=len(text),
            text=text,
            embedding=embedding,
            embedding_model=model,
        )
        for i, (text, embedding) in enumerate(zip(PASSAGES, embeddings, strict=True))
    )
    return file, chunks


def _firsts(owner, model, questions) -> list[str]:
    return [
        search_chunks(
            owner_id=owner.pk,
            user_id="u1",
            vector=vector,
            text=question,
            embedding_model=model,
            file_ids=None,
            limit=5,
        )[0].chunk.text
        for question, vector in zip(QUESTIONS, questions, strict=True)
    ]


@pytest.mark.django_db
def test_the_passage_with_the_asked_part_code_ranks_first(make_owner, vectors, settings):
    owner, _ = make_owner()
    model, passages, questions = vectors
    _catalogue(owner, model, passages)

    assert _firsts(owner, model, questions) == PASSAGES

    # The vectors alone miss some: the words are what tells these passages apart.
    settings.RETRIEVAL_LEXICAL = False
    clear_vector_cache()
    by_vector = _firsts(owner, model, questions)
    assert 20 <= sum(a == b for a, b in zip(by_vector, PASSAGES, strict=True)) < len(PASSAGES)

    # The words alone (vector signal off) find each too; cosine is still what is reported.
    settings.RETRIEVAL_LEXICAL, settings.RETRIEVAL_VECTOR = True, False
    clear_vector_cache()
    assert _firsts(owner, model, questions) == PASSAGES
    [hit] = search_chunks(
        owner_id=owner.pk,
        user_id="u1",
        vector=questions[0],
        text=QUESTIONS[0],
        embedding_model=model,
        file_ids=None,
        limit=1,
    )
    assert 0.3 < hit.score < 1.0


@pytest.mark.django_db
def test_a_deleted_passage_never_comes_back_through_its_words(make_owner, vectors):
    owner, _ = make_owner()
    model, passages, questions = vectors
    _, chunks = _catalogue(owner, model, passages)
    assert _firsts(owner, model, questions)[3] == PASSAGES[3]
    DocumentChunk.objects.filter(pk=chunks[3].pk).delete()
    hits = search_chunks(
        owner_id=owner.pk,
        user_id="u1",
        vector=questions[3],
        text=QUESTIONS[3],
        embedding_model=model,
        file_ids=None,
        limit=5,
    )
    assert PASSAGES[3] not in [hit.chunk.text for hit in hits] and len(hits) == 5


@pytest.mark.django_db
def test_memory_finds_the_past_question_that_names_the_code(make_owner, vectors):
    owner, _ = make_owner()
    model, _, questions = vectors
    rows = Query.objects.bulk_create(
        Query(
            owner=owner,
            user_id="u1",
            session_id="s",
            query=question,
            response="answer",
            model_provider="openai",
            model_name="m",
            status=Query.Status.COMPLETED,
            embedding=vector,
            embedding_model=model,
        )
        for question, vector in zip(QUESTIONS, questions, strict=True)
    )
    asked = run_sync(get_embedder().embed([f"Remind me what we said about {CODES[7]}"]))[0]
    scope = Scope(owner_id=str(owner.pk), user_id="u1", session_id="s2", query_id=str(ObjectId()))
    [(best, _), *_] = similar_query_rows(
        scope,
        vector=asked,
        text=f"Remind me what we said about {CODES[7]}",
        embedding_model=model,
        limit=3,
    )
    assert best.pk == rows[7].pk


def test_codes_names_and_numbers_are_terms_and_function_words_are_not():
    assert text_terms("What does clause 14.2 say about the XK-4471 pump?") == [
        "clause",
        "14.2",
        "14",
        "2",
        "say",
        "xk-4471",
        "xk",
        "4471",
        "pump",
    ]


def test_bm25_ranks_the_rare_term_first_and_follows_drops():
    index = LexicalIndex()
    index.add_many(enumerate(PASSAGES))
    index.add("cafeteria", "The cafeteria opens at noon.")
    assert index.top_k(QUESTIONS[9], 1)[0][0] == 9
    assert [key for key, _ in index.top_k("cafeteria noon", 3)] == ["cafeteria"]
    index.drop(range(30))  # more dead than live: postings are compacted
    assert len(index) == 11
    assert all(key not in range(30) for key, _ in index.top_k(CODES[9], 5))
    assert index.top_k(CODES[35], 1)[0][0] == 35
    assert [key for key, _ in index.top_k("seal", 5, only=[31, 5])] == [31]  # 5 is dropped
    assert 31 not in [key for key, _ in index.top_k("seal", 5, exclude=31)]


def test_rows_the_words_cannot_tell_apart_are_all_returned():
    index = LexicalIndex()
    index.add_many((i, "the same words") for i in range(10))
    assert sorted(key for key, _ in index.top_k("same words", 2)) == list(range(8))  # 4 x k


def test_scores_are_okapi_bm25():
    index = LexicalIndex()
    index.add("a", "pump seal")
    index.add("b", "pump valve valve")
    # N = 2, df(valve) = 1, |b| = 3, average length 2.5, tf = 2; k1 = 1.2, b = 0.75.
    idf = math.log(1 + (2 - 1 + 0.5) / (1 + 0.5))
    expected = idf * 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 3 / 2.5))
    assert index.top_k("valve", 5) == [("b", pytest.approx(expected, rel=1e-5))]
