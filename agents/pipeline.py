"""The agent pipeline of one query: coordinator → memory → shopping/product/vision → writer.

``run_pipeline(query_id)`` is idempotent: a query already finished is left alone, so a
redelivered Celery task does no harm. Every step is appended to the query's event log
(``node`` as each agent starts, ``chunk`` per token, then ``final`` or ``error``, then
``done``), and the outcome is stored on the Query document.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from bson import ObjectId
from django.conf import settings
from django.utils import timezone

from agents import coordinator, memory, product, shopping, vision, writer
from agents.providers.base import ImageInput
from agents.state import PipelineState
from files.models import File
from files.selectors import file_bytes
from llmplatform.core.db_threads import db_async
from llmplatform.core.errors import ApplicationError
from llmplatform.core.event_log import event_log
from queries.models import Query

logger = logging.getLogger(__name__)

AGENTS = {
    "CoordinatorAgent": coordinator.run,
    "MemoryAgent": memory.run,
    "ShoppingAgent": shopping.run,
    "ProductAgent": product.run,
    "VisionAgent": vision.run,
    "WriterAgent": writer.run,
}
FINISHED = {Query.Status.COMPLETED, Query.Status.FAILED, Query.Status.CANCELLED}


def _claim(query_id: str, query: Query | None) -> Query | None:
    """Mark the query running and return it; None when it is already finished.

    A redelivered task finds its query finished and does nothing. By primary key only:
    the embedded database's planner scans the collection for compound filters.
    """
    if query is None:
        query = Query.objects.filter(pk=ObjectId(query_id)).first()
        if query is None or query.status in FINISHED:
            return None
    query.status = Query.Status.RUNNING
    query.save(update_fields=["status"])
    return query


def _images(query: Query) -> list[ImageInput]:
    if not query.request.get("attachments"):
        return []
    file_ids = [ObjectId(file_id) for file_id in query.request.get("attachments", [])]
    files = File.objects.filter(owner_id=query.owner_id, pk__in=file_ids)
    images = []
    for file in files:
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


def _state_for(query: Query, images: list[ImageInput], emit: Any) -> PipelineState:
    params = query.request
    return PipelineState(
        query_id=str(query.pk),
        owner_id=query.owner_id,
        user_id=query.user_id,
        session_id=query.session_id,
        text=query.query,
        mode=query.mode,
        provider=query.model_provider,
        model=query.model_name,
        temperature=params["temperature"],
        max_tokens=params["max_tokens"],
        web_search=params.get("web_search", False),
        use_memory=params.get("use_memory", True),
        selected_option=params.get("selected_option"),
        images=images,
        system_prompt_override=params.get("system_prompt"),
        emit=emit,
    )


def final_event(query: Query) -> dict[str, Any]:
    """The ``final`` event for a stored query (also replayed after the log expired)."""
    return {
        "type": "final",
        "query_id": str(query.pk),
        "status": query.status,
        "response": query.response,
        "options": query.options,
        "product_cards": query.product_cards,
        "citations": query.citations,
        "intent": query.intent,
        "agents_used": query.agents_used,
        "usage": query.usage,
        "latency": query.latency,
        "metadata": query.metadata,
    }


def _store_outcome(query: Query, state: PipelineState, total_ms: float) -> None:
    query.response = state.shopping_question or state.response
    query.options = state.options
    query.citations = [{"url": c.url, "title": c.title} for c in state.citations]
    query.product_cards = state.product_cards
    query.intent = state.intent
    query.agents_used = state.agents_used
    query.embedding = state.embedding
    query.embedding_model = state.embedding_model
    query.usage = {**state.usage.as_dict(), "estimated": state.usage_estimated}
    query.latency = {
        "time_to_first_token_ms": (
            round(state.time_to_first_token_ms, 2) if state.time_to_first_token_ms else None
        ),
        "total_ms": round(total_ms, 2),
    }
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
    }
    query.status = Query.Status.CANCELLED if state.cancelled else Query.Status.COMPLETED
    query.completed_at = timezone.now()
    query.save()


def _store_failure(query: Query, error: ApplicationError, state: PipelineState | None) -> None:
    query.status = Query.Status.FAILED
    query.error = {**error.as_envelope()["error"], "status": error.status}
    if state is not None:
        query.agents_used = state.agents_used
        query.response = state.response
        query.usage = state.usage.as_dict()
    query.completed_at = timezone.now()
    query.save()


async def run_pipeline(query_id: str, *, query: Query | None = None) -> None:
    """Run the agents for ``query_id`` and store the outcome. Raises nothing it can store.

    ``query`` saves re-reading the document when the caller has just created it.
    """
    query = await db_async(_claim)(query_id, query)
    if query is None:
        return
    log = event_log()
    first_event = True

    async def emit(event: dict[str, Any]) -> None:
        nonlocal first_event
        if first_event:  # a client's first frame tells it which query it is following
            event = {**event, "query_id": query_id}
            first_event = False
        await log.aappend(query_id, event)

    started = time.perf_counter()
    state: PipelineState | None = None
    # Ends before Celery's soft time limit, whose signal would land outside this coroutine
    # and leave the query "running" with no error and no done event.
    deadline_s = max(1, settings.CELERY_TASK_SOFT_TIME_LIMIT - 15)
    try:
        async with asyncio.timeout(deadline_s):
            images = await db_async(_images)(query) if query.request.get("attachments") else []
            state = _state_for(query, images, emit)
            state.cancelled = await log.acancel_requested(query_id)  # stopped before it started
            if not state.cancelled:
                await _run_agent("CoordinatorAgent", state)
            step = 0
            while step < len(state.route) and not state.cancelled:  # agents may add steps
                if state.route[step] == "WriterAgent" and state.shopping_question:
                    # The interview's question is the answer of this turn; no model call needed.
                    await emit({"type": "chunk", "content": state.shopping_question})
                    break
                await _run_agent(state.route[step], state)
                step += 1
            if "MemoryAgent" not in state.agents_used and not state.cancelled:
                await memory.embed_query(state)  # stored for the memory of later questions
            await db_async(_store_outcome)(query, state, (time.perf_counter() - started) * 1000)
            await emit(final_event(query))
    except TimeoutError:
        timeout = ApplicationError(
            f"The answer took longer than {deadline_s} s and was stopped. Try again, or a "
            "shorter question.",
            code="query_timeout",
            status=504,
        )
        await db_async(_store_failure)(query, timeout, state)
        await emit({"type": "error", "query_id": query_id, **timeout.as_envelope()})
    except ApplicationError as exc:  # ProviderError included: stored, then reported
        logger.warning("query %s failed: %s", query_id, exc.message)
        await db_async(_store_failure)(query, exc, state)
        await emit({"type": "error", "query_id": query_id, **exc.as_envelope()})
    except Exception:  # the task boundary: a bug must not leave the query "running"
        logger.exception("query %s crashed", query_id)
        crash = ApplicationError(
            "The answer could not be produced because of an internal error; it has been "
            "logged. Try again.",
            code="internal_error",
            status=500,
        )
        await db_async(_store_failure)(query, crash, state)
        await emit({"type": "error", "query_id": query_id, **crash.as_envelope()})
    finally:
        message = "Query cancelled" if state is not None and state.cancelled else "Query complete"
        await emit({"type": "done", "message": message})
    if query.status == Query.Status.COMPLETED:
        from queries.services import query_completed

        await db_async(query_completed)(query=query)


async def _run_agent(name: str, state: PipelineState) -> None:
    await state.emit({"type": "node", "node": name})
    started = time.perf_counter()
    await AGENTS[name](state)
    state.agent_timings_ms[name] = round((time.perf_counter() - started) * 1000, 2)
    state.agents_used.append(name)
