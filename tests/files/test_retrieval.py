"""Retrieval details: named documents only, one cache for memory and chunks, the Atlas
path's pipeline, the index created by setup_indexes, and the shared prompt budget."""

from __future__ import annotations

import pytest
from bson import ObjectId

from agents.documents import (
    CHARS_PER_TOKEN,
    citation,
    fit_context,
    order_sources,
    passage_snippet,
)
from agents.ports import DocumentPassage, Scope
from agents.providers.base import Citation
from files import document_store, vector_cache
from files.models import CHUNK_TEXT_INDEX_NAME, CHUNK_VECTOR_INDEX_NAME, DocumentChunk
from tests.engine_state import run_state
from tests.files.conftest import ask, upload, wait_ingested
from tests.files.pdfs import facts_pdf, make_pdf

PDF = "application/pdf"


def _passage(text: str, score: float = 0.5, page: int | None = 1) -> DocumentPassage:
    return DocumentPassage(
        chunk_id="c", file_id="f", title="t.pdf", page=page, text=text, score=score
    )


def test_passages_come_first_then_memory_within_the_budget():
    passages = [_passage("a" * 400), _passage("b" * 400)]
    memory = [{"query": "q1", "response": "r" * 200}, {"query": "q2", "response": "r" * 40}]
    kept, remembered = fit_context(passages, memory, budget=230)
    assert [p.text[0] for p in kept] == ["a", "b"]  # 2 x 101 tokens
    assert remembered == [memory[1]]  # the long one does not fit, the short one does
    # The best passage is kept even alone over the budget (cut to it).
    [only], none = fit_context([_passage("z" * 4000)], memory, budget=100)
    assert len(only.text) == 100 * CHARS_PER_TOKEN and none == []


def test_snippet_centres_on_the_sentence_the_question_asks_about():
    text = (
        "Filler about the company and its plans. " * 20
        + "The mascot is an axolotl. "
        + ("More filler about the company. " * 20)
    )
    snippet = passage_snippet(text, "What is the company mascot?")
    assert "mascot is an axolotl" in snippet and len(snippet) <= 282


def test_sources_are_the_cited_passages_first_then_the_others_above_the_floor():
    async def emit(event):
        raise AssertionError(event)

    passages = [
        _passage("Soup of the day: tomato.", score=0.5, page=1),
        DocumentPassage("c2", "f2", "b.pdf", 3, "The mascot is an axolotl.", 0.3),
        DocumentPassage("c3", "f2", "b.pdf", 3, "It was chosen in 1999.", 0.25),
    ]
    state = run_state(scope=Scope("o", "u", "s", "q"), emit=emit, text="What is the mascot?")
    state.document_passages = [
        {k: v for k, v in p.__dict__.items() if k != "chunk_id"} for p in passages
    ]
    web = Citation(url="https://example.com/a", title="A")
    state.citations = [citation(passages[0], state.text), web, citation(passages[1], state.text)]
    # [3] is the same page as [2]; [9] names no passage.
    state.response = "The mascot is an axolotl [2][3], chosen in 1999 [3, 9]."
    order_sources(state)
    assert [(c.file_id, c.page, c.cited) for c in state.citations] == [
        ("f2", 3, True),
        ("f", 1, False),
        (None, None, False),
    ]
    assert state.citations[0].as_dict()["cited"] is True
    assert "axolotl" in state.citations[0].snippet


@pytest.mark.django_db
@pytest.mark.usefixtures("in_process", "uploads")
def test_named_documents_limit_the_search_to_them(api, fakes):
    handbook = wait_ingested(api, upload(api, "handbook.pdf", facts_pdf(), PDF).json()["file_id"])
    other = upload(api, "menu.pdf", make_pdf(["Soup of the day: tomato."]), PDF).json()
    other = wait_ingested(api, other["file_id"])
    body = ask(api, "What is the company mascot?", documents=[other["file_id"]]).json()
    # The named menu reaches the model (the user chose it), but a page unrelated to the
    # question is below the floor and not offered as a source.
    assert "Soup of the day" in str(fakes["openai"].chat_requests[-1].body)
    assert [c for c in body["citations"] if c["type"] == "document"] == []
    body = ask(api, "What is the company mascot?", use_documents=True).json()
    assert body["citations"][0]["file_id"] == handbook["file_id"]
    assert body["citations"][0]["cited"] is False  # the fake's answer cites no [n]
    fakes["openai"].reply_text = "It is an axolotl [1]."
    body = ask(api, "What is the company mascot?", use_documents=True).json()
    assert body["citations"][0]["file_id"] == handbook["file_id"]
    assert body["citations"][0]["cited"] is True


@pytest.mark.django_db
@pytest.mark.usefixtures("in_process", "uploads")
def test_memory_and_chunks_share_one_vector_cache(api):
    wait_ingested(api, upload(api, "handbook.pdf", facts_pdf(), PDF).json()["file_id"])
    ask(api, "Hello there", use_memory=True)  # memory reads the user's query vectors
    api.get("/api/v1/search", {"q": "mascot", "user_id": "u1", "scope": "all"})
    sources = {key[4] for key in vector_cache._cache}
    assert sources == {"queries", "chunks"}


@pytest.mark.django_db
def test_atlas_pipeline_filters_inside_the_search_and_rechecks_hits(monkeypatch, make_owner):
    owner, _ = make_owner("acme")
    captured = {}

    def atlas(pipeline):
        captured["pipeline"] = pipeline
        return [{"_id": ObjectId(), "score": 0.9}]  # a chunk that no longer exists

    monkeypatch.setattr(document_store, "_uses_vector_search", lambda dimensions: True)
    monkeypatch.setattr(document_store, "_aggregate", atlas)
    monkeypatch.setattr(
        document_store,
        "_user_documents",
        lambda owner_id, user_id: {
            ObjectId("0" * 24): document_store._Document("ready", "m", "a.pdf", None)
        },
    )
    hits = document_store.search_chunks(
        owner_id=owner.pk,
        user_id="u1",
        vector=[0.1] * 1536,
        embedding_model="m",
        file_ids=None,
        limit=5,
    )
    assert hits == []
    search = captured["pipeline"][0]["$vectorSearch"]
    assert search["index"] == CHUNK_VECTOR_INDEX_NAME
    assert search["filter"] == {
        "owner_id": owner.pk,
        "user_id": "u1",
        "embedding_model": "m",
        "file_id": {"$in": [ObjectId("0" * 24)]},
    }
    # Every filtered field is declared in the index, as Atlas requires.
    [index] = [i for i in DocumentChunk._meta.indexes if i.name == CHUNK_VECTOR_INDEX_NAME]
    assert {"owner", "user_id", "file", "embedding_model"} <= set(index.fields)


@pytest.mark.django_db
def test_on_a_server_with_score_fusion_passages_fuse_vector_and_text_search(
    monkeypatch, make_owner
):
    owner, _ = make_owner("acme")
    file_id = ObjectId("0" * 24)
    captured = {}

    def atlas(pipeline):
        captured["pipeline"] = pipeline
        return [{"_id": ObjectId(), "embedding": [0.1] * 1536}]  # no longer exists

    monkeypatch.setattr(document_store, "_uses_vector_search", lambda dimensions: True)
    monkeypatch.setattr(document_store, "server_fuses_scores", lambda: True)
    monkeypatch.setattr(document_store, "_aggregate", atlas)
    monkeypatch.setattr(
        document_store,
        "_user_documents",
        lambda owner_id, user_id: {file_id: document_store._Document("ready", "m", "a.pdf", None)},
    )
    hits = document_store.search_chunks(
        owner_id=owner.pk,
        user_id="u1",
        vector=[0.1] * 1536,
        text="clause 14.2",
        embedding_model="m",
        file_ids=None,
        limit=5,
    )
    assert hits == []  # hits are rechecked against the allowed files
    fusion, limit, project = captured["pipeline"]
    pipelines = fusion["$scoreFusion"]["input"]["pipelines"]
    assert pipelines["vector"][0]["$vectorSearch"]["index"] == CHUNK_VECTOR_INDEX_NAME
    search = pipelines["text"][0]["$search"]
    assert search["index"] == CHUNK_TEXT_INDEX_NAME
    assert search["compound"]["must"] == [{"text": {"query": "clause 14.2", "path": "text"}}]
    assert search["compound"]["filter"] == [
        {"equals": {"path": "owner_id", "value": owner.pk}},
        {"equals": {"path": "user_id", "value": "u1"}},
        {"equals": {"path": "embedding_model", "value": "m"}},
        {"in": {"path": "file_id", "value": [file_id]}},
    ]
    [index] = [i for i in DocumentChunk._meta.indexes if i.name == CHUNK_TEXT_INDEX_NAME]
    declared = {DocumentChunk._meta.get_field(name).column for name in index.field_mappings}
    assert {"owner_id", "user_id", "embedding_model", "file_id", "text"} <= declared
    assert limit == {"$limit": 5} and project == {"$project": {"_id": 1, "embedding": 1}}


@pytest.mark.django_db
def test_setup_indexes_knows_the_chunk_vector_index():
    from llmplatform.core.indexes import indexes_ensure

    outcomes = {(o.collection, o.name): o.action for o in indexes_ensure(create=True)}
    assert outcomes[("document_chunks", CHUNK_VECTOR_INDEX_NAME)] == "skipped"
    assert outcomes[("document_chunks", "chunks_owner_user_vectors")] in ("created", "exists")


@pytest.mark.django_db
def test_the_chunk_matrix_follows_each_files_version(make_owner):
    from files.document_store import CHUNK_VECTORS
    from files.models import File
    from files.vector_cache import group_vectors

    owner, _ = make_owner("acme")

    def document(name: str) -> File:
        return File.objects.create(
            owner=owner,
            user_id="u1",
            filename=name,
            content_type="text/plain",
            size=1,
            sha256="0" * 64,
            storage_path=name,
            ingestion_status="ready",
            embedding_model="m",
        )

    def chunks(file: File, count: int, value: float) -> list:
        return DocumentChunk.objects.bulk_create(
            DocumentChunk(
                owner=owner,
                user_id="u1",
                file=file,
                index=i,
                char_start=0,
                char_end=1,
                text="x",
                embedding=[value, 1.0],
                embedding_model="m",
            )
            for i in range(count)
        )

    a, b = document("a.txt"), document("b.txt")
    chunks(a, 3, 0.1)
    chunks(b, 2, 0.2)

    def held(versions):
        entry = group_vectors(
            owner_id=owner.pk,
            user_id="u1",
            model="m",
            dimensions=2,
            source=CHUNK_VECTORS,
            versions=versions,
        )
        return {g: int(entry.group_mask([g]).sum()) for g in (a.pk, b.pk)}, entry

    assert held({a.pk: 1, b.pk: 1})[0] == {a.pk: 3, b.pk: 2}
    # Re-ingested: a's old chunks replaced by 4 new ones, at a new version.
    DocumentChunk.objects.filter(file=a).delete()
    chunks(a, 4, 0.3)
    assert held({a.pk: 1, b.pk: 1})[0] == {a.pk: 3, b.pk: 2}  # same version: not re-read
    counts, entry = held({a.pk: 2, b.pk: 1})
    assert counts == {a.pk: 4, b.pk: 2}
    assert len(entry.ids) == 6
    # b no longer searchable (deleted, or being re-ingested): its rows leave the matrix,
    # and a code freed by it is never given to another file.
    counts, entry = held({a.pk: 2})
    assert counts == {a.pk: 4, b.pk: 0} and len(entry.ids) == 4
    c = document("c.txt")
    chunks(c, 1, 0.4)
    entry = group_vectors(
        owner_id=owner.pk,
        user_id="u1",
        model="m",
        dimensions=2,
        source=CHUNK_VECTORS,
        versions={a.pk: 2, c.pk: 1},
    )
    assert int(entry.group_mask([a.pk]).sum()) == 4 and int(entry.group_mask([c.pk]).sum()) == 1
