"""Executing a question: claim → build state → engine → outcome.

``queries.start`` stored the Query and had the dispatcher run it: a worker calls
``query_execute`` with the id and claims the query; a run in this process is handed the
stored instance, already ``running``. It runs the engine under a watcher that cancels it
on a stop request or at the deadline, stores the outcome, and appends ``final``/``error``
and always ``done`` to the event log. A heartbeat marks a live run; ``queries_sweep``
fails the ones whose worker died, so no query stays ``running``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import Future
from datetime import timedelta
from typing import Any

from bson import ObjectId
from django.utils import timezone

from agents.engine import run_engine
from agents.ports import MemoryReads, Scope
from agents.providers.base import ImageInput, Sampling
from agents.providers.structured import response_format_parsed
from agents.providers.tool_calling import (
    chat_message_of,
    tool_calls_stored,
    tool_choice_parsed,
    tools_parsed,
)
from agents.state import RunState
from files.models import File
from files.selectors import file_bytes
from llmplatform.core import metrics, tracing
from llmplatform.core.bridge import to_thread
from llmplatform.core.config import run_config
from llmplatform.core.dispatch import dispatcher
from llmplatform.core.errors import ApplicationError, internal_error
from llmplatform.core.event_log import event_log, wait_for_cancel
from llmplatform.core.quotas import quota_settle
from queries.client_turns import client_system_prompt
from queries.engine_ports import ENGINE_PORTS
from queries.memory_store import memory_row_stored
from queries.models import Query
from queries.outcome import error_stored, latency_stored, usage_stored
from queries.question import RunRequest
from queries.streams import FINISHED, final_event

logger = logging.getLogger(__name__)

# What follows a completed answer (a summary every MEMORY_SUMMARY_INTERVAL pairs).
AFTER_COMPLETION_TASK = "queries.after_completion"


def _fresh(heartbeat_at: Any) -> bool:
    if heartbeat_at is None:
        return False
    stale_after = timedelta(seconds=run_config().budget.stale_after_s)
    return timezone.now() - heartbeat_at < stale_after


def _claim(query_id: str) -> Query | None:
    """A worker's delivery: the query, marked running; None when there is nothing to do.

    Finished means a redelivery after success; running with a live heartbeat is another
    worker's; running with a dead one means its worker died mid-answer, and the answer
    cannot be resumed (its tokens were already streamed), so it fails with
    ``worker_lost``. (A run in the process that stored the query gets the instance,
    stored ``running`` already: no claim.)
    """
    query = Query.objects.filter(pk=ObjectId(query_id)).first()
    if query is None or query.status in FINISHED:
        return None
    if query.status == Query.Status.RUNNING:
        if not _fresh(query.heartbeat_at):
            _fail_lost(query)
        return None
    query.status = Query.Status.RUNNING
    query.heartbeat_at = timezone.now()
    Query.objects.filter(pk=query.pk).update(status=query.status, heartbeat_at=query.heartbeat_at)
    return query


def _images(query: Query, attachments: list[str]) -> list[ImageInput]:
    file_ids = [ObjectId(file_id) for file_id in attachments]
    if not file_ids:
        return []
    images = []
    for file in File.objects.filter(owner_id=query.owner_id, pk__in=file_ids):
        if not file.content_type.startswith("image/"):
            continue
        try:
            images.append(ImageInput(data=file_bytes(file=file), media_type=file.content_type))
        except OSError:
            raise ApplicationError(
                f"The attachment {file.filename!r} is no longer stored; upload it again.",
                code="attachment_unavailable",
                status=409,
            ) from None
    return images


def _state_for(query: Query, params: RunRequest, emit: Any) -> RunState:
    messages = params.messages
    tools = tools_parsed(params.tools)
    return RunState(
        scope=Scope(
            owner_id=str(query.owner_id),
            user_id=query.user_id,
            session_id=query.session_id,
            query_id=str(query.pk),
        ),
        text=query.query,
        mode=query.mode,
        provider=query.model_provider,
        model=query.model_name,
        temperature=params.temperature,
        max_tokens=params.max_tokens,
        web_search=params.web_search,
        use_memory=params.use_memory,
        memory_scope=params.memory_scope,
        selected_option=params.selected_option,
        images=[],
        # The client's system turns are its system prompt (they take the base prompt's
        # place); its other turns are the model's context as given.
        system_prompt_override=client_system_prompt(messages) or params.system_prompt,
        documents=params.documents,
        use_documents=params.use_documents,
        client_messages=(
            None
            if messages is None
            else [chat_message_of(turn) for turn in messages if turn["role"] != "system"]
        ),
        response_format=(
            None
            if params.response_format is None
            else response_format_parsed(params.response_format)
        ),
        tools=tools,
        tool_choice=tool_choice_parsed(params.tool_choice, tools),
        parallel_tool_calls=params.parallel_tool_calls,
        tool_turns=[chat_message_of(turn) for turn in params.tool_turns or ()],
        sampling=Sampling.of(params.sampling),
        emit=emit,
    )


def _store_outcome(query: Query, state: RunState, total_ms: float) -> None:
    if state.cancelled and state.streamed_chunks:
        # Vendors report usage only at the end of a stream, which a stop cuts off. Count
        # what was delivered (about one token per streamed chunk) and say it is an estimate.
        state.usage.output_tokens += state.streamed_chunks
        state.usage.cost_usd = None
        state.usage_estimated = True
    query.response = state.shopping_question or state.response
    query.options = state.options
    query.citations = [c.as_dict() for c in state.citations]
    query.product_cards = state.product_cards
    query.intent = state.intent
    query.agents_used = state.agents_used
    query.embedding = state.embedding
    query.embedding_model = state.embedding_model
    query.usage = usage_stored(state.usage, estimated=state.usage_estimated)
    query.latency = latency_stored(
        time_to_first_token_ms=state.time_to_first_token_ms, total_ms=total_ms
    )
    query.metadata = {
        **query.metadata,
        "memory": state.memory_items,
        "summary_used": state.summary is not None,
        "intent_classified_by_model": state.intent_classified_by_model,
        "agent_timings_ms": state.agent_timings_ms,
        "products_note": state.products_note,
        "shopping_needs": state.shopping_needs,
        "model_note": (
            "local is a demo-quality 135M-parameter model" if state.provider == "local" else None
        ),
        "finish_reason": state.finish_reason,
        "tool_calls": tool_calls_stored(state.tool_calls),
        # Only when asked for (Sampling.logprobs): nothing stored otherwise.
        **({"logprobs": state.logprobs} if state.logprobs else {}),
    }
    query.status = Query.Status.CANCELLED if state.cancelled else Query.Status.COMPLETED
    query.completed_at = timezone.now()
    # Completed with its embedding: from now on in memory, so read as new by every warm
    # matrix (it was inserted, and stamped, before they read past it).
    query.indexed_at = query.completed_at
    query.save()
    memory_row_stored(query)


def _store_failure(query: Query, error: ApplicationError, state: RunState | None) -> None:
    query.status = Query.Status.FAILED
    query.error = error_stored(error)
    if state is not None:
        query.agents_used = state.agents_used
        query.response = state.response
        query.usage = usage_stored(state.usage)
    query.completed_at = timezone.now()
    query.save()


def _timeout_error(deadline_s: float) -> ApplicationError:
    return ApplicationError(
        f"The answer took longer than {deadline_s:g} s and was stopped. Try again, or a "
        "shorter question.",
        code="query_timeout",
        status=504,
    )


async def _heartbeat(query: Query, every_s: float) -> None:
    # The first beat is every_s after the start: the row is stored long before
    # (queries.start), and an update of a row not there yet would change nothing anyway.
    while True:
        await asyncio.sleep(every_s)
        now = timezone.now()
        await to_thread(Query.objects.filter(pk=query.pk).update)(heartbeat_at=now)


async def _watched(state: RunState, deadline_s: float, poll_s: float) -> None:
    """Run the engine until it ends, a stop is requested, or the deadline.

    A stop cancels the engine's task wherever it waits (a stalled provider, the
    classifier, vision, embeddings, product search); the state keeps what was done.
    Raises TimeoutError at the deadline, and what the engine raised.
    """
    engine = asyncio.create_task(run_engine(state, ENGINE_PORTS))
    stop = asyncio.create_task(wait_for_cancel(event_log(), state.scope.query_id, poll_s=poll_s))
    try:
        done, _ = await asyncio.wait(
            {engine, stop}, timeout=deadline_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        stop.cancel()
    if engine in done:
        engine.result()  # raises what the engine raised
        return
    engine.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await engine
    if stop not in done:
        raise TimeoutError
    state.cancelled = True


async def query_execute(
    query_id: str,
    *,
    query: Query | None = None,
    written: Future[None] | None = None,
    memory_reads: MemoryReads | None = None,
    trace_context: dict[str, str] | None = None,
) -> None:
    """Run the query and store its outcome. Raises nothing it can store; idempotent.

    ``query``, ``written`` and ``memory_reads`` are the in-process hand-over: the
    instance, whether its row is stored yet (``queries.start`` stores it while this runs;
    nothing here writes the row before), and the memory reads the start began (the
    session's turns admission read among them). Its
    spans (``query.run`` and every step's) continue the trace of ``trace_context`` (the
    start's, carried by the dispatcher)."""
    with (
        tracing.continued(trace_context),
        tracing.span("query.run", {tracing.QUERY_ID: query_id}) as run_span,
    ):
        await _execute(query_id, query, written, memory_reads, run_span)


async def _row_stored(written: Future[None] | None) -> bool:
    """Wait until the row of an in-process run exists (and its session counted it);
    False if its insert failed (the edge answered its client with that error: there is
    nothing to store or report)."""
    if written is None:
        return True
    stored = asyncio.wrap_future(written)
    await asyncio.wait([stored])
    return stored.exception() is None  # the insert's error was raised to the edge


async def _execute(
    query_id: str,
    query: Query | None,
    written: Future[None] | None,
    memory_reads: MemoryReads | None,
    run_span: tracing.Span,
) -> None:
    if query is None:
        query = await to_thread(_claim)(query_id)
        if query is None:
            return
    budget = run_config().budget
    log = event_log()
    first_event = True

    async def emit(event: dict[str, Any]) -> None:
        nonlocal first_event
        if first_event:  # a client's first frame tells it which query it is following
            event = {**event, "query_id": query_id}
            first_event = False
        await log.aappend(query_id, event)

    started = time.perf_counter()
    state: RunState | None = None
    heartbeat = asyncio.create_task(_heartbeat(query, budget.heartbeat_s))
    try:
        params = RunRequest.stored(query.request)
        state = _state_for(query, params, emit)
        state.memory_reads = memory_reads
        if params.attachments:
            state.images = await to_thread(_images)(query, params.attachments)
        await _watched(state, budget.engine_deadline_s, run_config().cancel_poll_s)
        if not await _row_stored(written):
            return
        with tracing.span("query.store_outcome", {tracing.QUERY_ID: query_id}):
            total_ms = (time.perf_counter() - started) * 1000
            await to_thread(_store_outcome)(query, state, total_ms)
        await emit(final_event(query))
    except TimeoutError:
        error = _timeout_error(budget.engine_deadline_s)
        await _report_failure(query, error, state, emit, written=written)
    except ApplicationError as exc:  # ProviderError included: stored, then reported
        logger.warning("query %s failed: %s", query_id, exc.message)
        await _report_failure(query, exc, state, emit, written=written)
    except Exception:  # the task boundary: a bug must not leave the query "running"
        logger.exception("query %s crashed", query_id)
        await _report_failure(query, internal_error(), state, emit, written=written)
    finally:
        heartbeat.cancel()
        # Before ``done``: a client that saw the answer end sees its budget settled.
        await to_thread(_settle_quota)(query)
        message = "Query cancelled" if state is not None and state.cancelled else "Query complete"
        await emit({"type": "done", "message": message})
    _record_metrics(query, total_ms=(time.perf_counter() - started) * 1000)
    _annotate_run(run_span, query)
    if query.status == Query.Status.COMPLETED:
        dispatcher().submit_background(
            AFTER_COMPLETION_TASK, str(query.pk), trace_context=tracing.context_carrier()
        )


def _annotate_run(run_span: tracing.Span, query: Query) -> None:
    """What the run's span says about the whole answer: the numbers a person reads first."""
    usage, latency = query.usage or {}, query.latency or {}
    tracing.set_attributes(
        run_span,
        {
            "llmplatform.status": query.status,
            "gen_ai.system": query.model_provider,
            "gen_ai.request.model": query.model_name,
            "gen_ai.usage.input_tokens": usage.get("input_tokens"),
            "gen_ai.usage.output_tokens": usage.get("output_tokens"),
            "llmplatform.cost_usd": usage.get("cost_usd"),
            "llmplatform.ttft_ms": latency.get("time_to_first_token_ms"),
            "llmplatform.cancelled": query.status == Query.Status.CANCELLED or None,
        },
    )
    tracing.record_content(run_span, "llmplatform.question", query.query)
    tracing.record_content(run_span, "llmplatform.answer", query.response)


def _settle_quota(query: Query) -> None:
    """Count what the run used against its key's budgets instead of the estimate.

    Raises nothing: an unreachable cache must not keep the stream from ending.
    """
    usage = query.usage or {}
    try:
        quota_settle(
            query.request.get("quota"),
            run_id=str(query.pk),
            tokens=int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0),
            usd=usage.get("cost_usd"),
        )
    except Exception:
        logger.exception("query %s: its usage could not be counted against its budget", query.pk)


def _record_metrics(query: Query, *, total_ms: float) -> None:
    usage, latency = query.usage or {}, query.latency or {}
    metrics.record_query_finished(
        provider=query.model_provider,
        model=query.model_name,
        owner=str(query.owner_id),
        status=query.status,
        ttft_ms=latency.get("time_to_first_token_ms"),
        total_ms=total_ms,
        input_tokens=usage.get("input_tokens"),
        output_tokens=usage.get("output_tokens"),
        cost_usd=usage.get("cost_usd"),
    )


async def _report_failure(
    query: Query,
    error: ApplicationError,
    state: RunState | None,
    emit: Any,
    *,
    written: Future[None] | None = None,
) -> None:
    tracing.mark_error(tracing.current_span(), error)
    if not await _row_stored(written):
        return
    await to_thread(_store_failure)(query, error, state)
    await emit({"type": "error", "query_id": str(query.pk), **error.as_envelope()})


# ----- never stuck -----


def _worker_lost() -> ApplicationError:
    return ApplicationError(
        "The worker answering this query stopped (it was restarted or crashed) and the "
        "answer could not be finished. Ask again.",
        code="worker_lost",
        status=503,
    )


def _fail_lost(query: Query) -> bool:
    """Fail a run whose worker died and end its stream; False if it finished meanwhile."""
    error = _worker_lost()
    changed = Query.objects.filter(pk=query.pk, status=query.status).update(
        status=Query.Status.FAILED,
        error=error_stored(error),
        completed_at=timezone.now(),
    )
    if not changed:
        return False
    log = event_log()
    query_id = str(query.pk)
    log.append(query_id, {"type": "error", "query_id": query_id, **error.as_envelope()})
    log.append(query_id, {"type": "done", "message": "Query failed"})
    logger.warning("query %s failed: its worker stopped", query_id)
    if query.trace_id:
        # The dead worker's spans died with it: the trace still ends saying what happened.
        attributes = {tracing.QUERY_ID: query_id}
        with tracing.span_in_trace(query.trace_id, "query.worker_lost", attributes) as lost:
            tracing.mark_error(lost, error)
    # What it used before its worker died is unknown: its reservation is released.
    _settle_quota(query)
    return True


def queries_sweep() -> int:
    """Fail runs whose worker died: running with a stale heartbeat, or pending past the
    whole budget (dispatched, never taken). Returns how many. Raises nothing."""
    budget = run_config().budget
    now = timezone.now()
    stale = Query.objects.filter(
        status=Query.Status.RUNNING,
        heartbeat_at__lt=now - timedelta(seconds=budget.stale_after_s),
    ).only("pk", "status", "request", "usage", "trace_id")
    never_taken = Query.objects.filter(
        status=Query.Status.PENDING,
        timestamp__lt=now - timedelta(seconds=budget.visibility_timeout_s + budget.grace_s),
    ).only("pk", "status", "request", "usage", "trace_id")
    return sum(_fail_lost(query) for query in [*stale, *never_taken])
