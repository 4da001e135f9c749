"""The owner of a query run: start → dispatch → claim → build state → engine → outcome.

Every edge (the JSON view, SSE, the websocket) calls ``query_start``, which stores the
Query (``pending``; ``running`` when it runs in this process) and hands it to the
dispatcher. Wherever it runs, ``query_execute``
claims it, runs the engine under a watcher that cancels it on a stop request or at the
deadline, stores the outcome, and appends ``final``/``error`` and always ``done`` to the
event log. A heartbeat marks a live run; ``queries_sweep`` fails the ones whose worker
died, so no query stays ``running``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bson import ObjectId
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from agents import memory
from agents.engine import run_engine
from agents.ports import Scope
from agents.providers.base import ChatMessage, ImageInput
from agents.providers.registry import (
    available_providers,
    default_model_for,
    default_provider,
    get_chat_provider,
)
from agents.state import RunState
from files.charges import Payer
from files.models import File
from files.selectors import documents_ready, file_bytes, file_get
from files.services import file_check, file_upload
from llmplatform.core import metrics
from llmplatform.core.bridge import to_thread
from llmplatform.core.config import provider_config, run_config
from llmplatform.core.errors import ApplicationError, internal_error
from llmplatform.core.event_log import event_log, wait_for_cancel
from llmplatform.core.models import ApiKey
from llmplatform.core.quotas import quota_admit, quota_settle
from queries.admission import question_reservation
from queries.dispatch import dispatcher
from queries.engine_ports import ENGINE_PORTS
from queries.memory_store import recent_turns
from queries.models import Query
from sessions.selectors import session_variants
from sessions.services import session_for_query

logger = logging.getLogger(__name__)

FINISHED = frozenset({Query.Status.COMPLETED, Query.Status.FAILED, Query.Status.CANCELLED})
_DATA_URL = re.compile(r"^data:(image/(?:png|jpeg|gif|webp));base64,(.+)$", re.DOTALL)
# A client-kept conversation (the OpenAI-compatible API) is bounded by the request body
# size too; this bounds the number of turns the writer has to lay out.
MAX_CONVERSATION_TURNS = 500
CONVERSATION_ROLES = ("system", "user", "assistant")


# ----- start -----


def _attachment_ids(*, owner, payer: Payer, attachments: list[str]) -> list[str]:
    """File ids for every attachment; image data URLs are stored as files, counted
    against ``payer``'s storage quota like any upload.

    Everything is checked before anything is stored: a rejected query leaves no files.
    Raises ApplicationError (400, 404 for another owner's or unknown file, 413, 415).
    """
    decoded: list[tuple[int, bytes, str]] = []
    ids: list[str] = []
    for index, attachment in enumerate(attachments):
        match = _DATA_URL.match(attachment)
        if attachment.startswith("data:") and not match:
            raise ApplicationError(
                f"attachments[{index}] is not a base64 image data URL "
                "(data:image/png|jpeg|gif|webp;base64,...).",
                code="invalid_attachment",
            )
        if match:
            try:
                decoded.append(
                    (index, base64.b64decode(match.group(2), validate=True), match.group(1))
                )
            except binascii.Error:
                raise ApplicationError(
                    f"attachments[{index}] has invalid base64 data.", code="invalid_attachment"
                ) from None
            continue
        stored = file_get(owner=owner, file_id=attachment)
        if not stored.content_type.startswith("image/"):
            raise ApplicationError(
                f"attachments[{index}] is {stored.filename!r} ({stored.content_type}): only "
                "images can be attached to a query.",
                code="unsupported_attachment",
            )
        ids.append(str(stored.pk))
    uploads = [
        SimpleUploadedFile(f"attachment-{index}", content, content_type=content_type)
        for index, content, content_type in decoded
    ]
    for upload in uploads:
        file_check(upload=upload)
    ids.extend(
        str(file_upload(owner=owner, user_id=payer.user_id, upload=upload, payer=payer).pk)
        for upload in uploads
    )
    return ids


def _conversation(params: dict[str, Any]) -> list[dict[str, str]] | None:
    """The client's earlier turns, checked; None when it sent none (then the session's
    stored history is the context). Raises ApplicationError (400)."""
    conversation = params.get("conversation")
    if conversation is None:
        return None
    if not isinstance(conversation, list) or len(conversation) > MAX_CONVERSATION_TURNS:
        raise ApplicationError(
            f"conversation must be a list of at most {MAX_CONVERSATION_TURNS} turns.",
            code="invalid_conversation",
        )
    turns: list[dict[str, str]] = []
    for index, turn in enumerate(conversation):
        if (
            not isinstance(turn, dict)
            or set(turn) != {"role", "content"}
            or turn["role"] not in CONVERSATION_ROLES
            or not isinstance(turn["content"], str)
        ):
            raise ApplicationError(
                f"conversation[{index}] must be {{role, content}} with role one of "
                f"{', '.join(CONVERSATION_ROLES)} and content a string.",
                code="invalid_conversation",
                extra={"index": index},
            )
        turns.append({"role": turn["role"], "content": turn["content"]})
    return turns


def _client_system_prompt(conversation: list[dict[str, str]] | None) -> str | None:
    """The client's own system prompt: its system turns, in order."""
    parts = [turn["content"] for turn in conversation or [] if turn["role"] == "system"]
    return "\n\n".join(parts) or None


@dataclass
class _Choices:
    """What answers the query, and which experiment variants it was exposed to."""

    provider: str
    model: str
    temperature: float
    system_prompt: str | None
    # Experiment key -> variant, for every experiment the query is exposed to.
    variants: dict[str, str]
    # Experiment key -> {"variant", "reason"}: assigned but not exposed (see _exposure).
    excluded: dict[str, dict[str, str]]


def _set_by_request(*, field: str, requested: dict[str, Any], client_system: str | None) -> bool:
    """Whether the request itself chose ``field``, so no experiment may vary it.

    A model name belongs to one vendor: a request naming its provider has also decided
    which models can answer, so it bypasses an experiment varying ``model_name`` too.
    """
    if field == "system_prompt":
        return client_system is not None
    if field == "model_name":
        return bool(requested["model_name"] or requested["model_provider"])
    if field == "temperature":
        return requested["temperature"] is not None
    return bool(requested.get(field))


def _exposure(
    *, assigned: Any, requested: dict[str, Any], client_system: str | None, claimed: set[str]
) -> str | None:
    """Why the query is not exposed to ``assigned``'s experiment; None when it is.

    Decided from the fields the experiment varies, never from the arm: an arm-dependent
    rule (a control without overrides "shaping" nothing) would count the arms unequally.
    ``claimed`` holds the fields of the older experiments already exposed: the one
    started first wins a field both vary.
    """
    for field in sorted(assigned.varied):
        if _set_by_request(field=field, requested=requested, client_system=client_system):
            return f"request_set:{field}"
    for field in sorted(assigned.varied):
        if field in claimed:
            return f"conflict:{field}"
    return None


def _choices(*, params: dict[str, Any], session: Any) -> _Choices:
    """The request's own choices win; an experiment varies only what the request left
    open, and the query is recorded as exposed to it or excluded from it (with why).
    Raises ApplicationError (400)."""
    requested_provider = params.get("model_provider")
    requested_model = params.get("model_name")
    requested_temperature = params.get("temperature")
    requested = {
        "model_provider": requested_provider,
        "model_name": requested_model,
        "temperature": requested_temperature,
    }
    # A client that sends its own system prompt is not given an experiment's.
    client_system = _client_system_prompt(params.get("conversation"))
    applied: dict[str, Any] = {}
    variants: dict[str, str] = {}
    excluded: dict[str, dict[str, str]] = {}
    claimed: set[str] = set()
    for assigned in session_variants(session=session):  # oldest experiment first
        reason = _exposure(
            assigned=assigned, requested=requested, client_system=client_system, claimed=claimed
        )
        if reason is not None:
            excluded[assigned.experiment_key] = {"variant": assigned.variant, "reason": reason}
            continue
        variants[assigned.experiment_key] = assigned.variant
        claimed |= assigned.varied
        for key in ("model_provider", "model_name", "temperature", "system_prompt"):
            if key in assigned.overrides:
                applied[key] = assigned.overrides[key]
    provider = (
        requested_provider
        or applied.get("model_provider")
        or default_provider()
        or provider_config().default_provider
    )
    get_chat_provider(provider)  # raises a 400 listing the available providers
    model = requested_model or (
        applied["model_name"]
        if "model_name" in applied and applied.get("model_provider", provider) == provider
        else default_model_for(provider)
    )
    temperature = requested_temperature
    if temperature is None:
        temperature = applied.get("temperature", run_config().default_temperature)
    return _Choices(
        provider=provider,
        model=model,
        temperature=temperature,
        system_prompt=applied.get("system_prompt"),
        variants=variants,
        excluded=excluded,
    )


def _check_web_search(provider: str) -> None:
    if get_chat_provider(provider).supports_web_search:
        return
    searching = [
        name for name in available_providers() if get_chat_provider(name).supports_web_search
    ]
    listed = ", ".join(searching) if searching else "none is configured here"
    raise ApplicationError(
        f"Provider {provider!r} cannot search the web. Send web_search=false, or use a "
        f"provider that can: {listed}.",
        code="web_search_unsupported",
        extra={"providers_with_web_search": searching},
    )


def _stored_history(
    *, owner: Any, params: dict[str, Any], conversation: list[dict[str, str]] | None
) -> list[tuple[str, str]]:
    """The session's stored turns the memory agent will put in the prompt (none when the
    client sends its own conversation or memory is off): what admission reserves for it."""
    if conversation is not None or not params.get("use_memory", True):
        return []
    scope = Scope(
        owner_id=str(owner.pk),
        user_id=params["user_id"],
        session_id=params["session_id"],
        query_id="",
    )
    turns = recent_turns(scope, limit=memory.HISTORY_TURNS)
    return [(turn.question, turn.answer) for turn in turns]


def _admit(
    *,
    api_key: ApiKey | None,
    owner: Any,
    params: dict[str, Any],
    choices: _Choices,
    conversation: list[dict[str, str]] | None,
    documents: list[str],
) -> dict | None:
    """Count the question against the key's limits (the owner account's without a key:
    the signed-in chat UI), reserving the most it can use (``queries.admission``).
    Raises ApplicationError (429)."""
    reservation = question_reservation(
        provider=choices.provider,
        model=choices.model,
        text=params["query"],
        mode=params.get("mode", "chat"),
        max_tokens=params.get("max_tokens") or run_config().default_max_tokens,
        conversation=conversation,
        system_prompt=_client_system_prompt(conversation) or choices.system_prompt,
        use_memory=params.get("use_memory", True),
        use_documents=bool(documents) or params.get("use_documents", False),
        images=len(params.get("attachments", [])),
        history=_stored_history(owner=owner, params=params, conversation=conversation),
    )
    return quota_admit(
        api_key=api_key,
        account=owner if api_key is None else None,
        user_id=params["user_id"],
        tokens_estimate=reservation.tokens,
        usd_estimate=reservation.usd,
    )


def query_start(*, owner, params: dict[str, Any], api_key: ApiKey | None = None) -> Query:
    """Store a pending Query for validated ``params`` and dispatch its run.

    The one entry of every edge. The session is started through ``session_start`` when
    it is new, so every query counts in analytics and experiments. ``api_key`` is the
    caller whose limits and budgets apply; without one (the signed-in chat UI) the
    owner's account limits apply. A refusal comes before anything is stored or any
    provider is called. Raises ApplicationError (400, 404, 413, 415, 429).
    """
    conversation = _conversation(params)
    session = session_for_query(
        owner=owner, session_id=params["session_id"], user_id=params["user_id"]
    )
    choices = _choices(params={**params, "conversation": conversation}, session=session)
    web_search = params.get("web_search", False)
    if web_search:
        _check_web_search(choices.provider)
    # Named documents are checked before admission: a 404 or 409 costs no quota.
    documents = documents_ready(
        owner=owner, user_id=params["user_id"], file_ids=params.get("documents", [])
    )
    reservation = _admit(
        api_key=api_key,
        owner=owner,
        params=params,
        choices=choices,
        conversation=conversation,
        documents=documents,
    )
    try:
        payer = Payer(
            api_key=api_key,
            account=owner if api_key is None else None,
            user_id=params["user_id"],
        )
        attachments = _attachment_ids(
            owner=owner, payer=payer, attachments=params.get("attachments", [])
        )
    except ApplicationError:
        # Refused after admission: the question used nothing.
        quota_settle(reservation, run_id=str(ObjectId()), tokens=0, usd=0.0)
        raise
    runs = dispatcher()
    running = runs.starts_runs_at_once
    query = Query.objects.create(
        status=Query.Status.RUNNING if running else Query.Status.PENDING,
        heartbeat_at=timezone.now() if running else None,
        owner=owner,
        user_id=params["user_id"],
        session_id=params["session_id"],
        query=params["query"],
        mode=params.get("mode", "chat"),
        model_provider=choices.provider,
        model_name=choices.model,
        experiments=choices.variants,
        experiments_excluded=choices.excluded,
        request={
            "web_search": web_search,
            "use_memory": params.get("use_memory", True),
            "attachments": attachments,
            "selected_option": params.get("selected_option"),
            "temperature": choices.temperature,
            "max_tokens": params.get("max_tokens") or run_config().default_max_tokens,
            "system_prompt": choices.system_prompt,
            "conversation": conversation,
            "quota": reservation,
            "documents": documents,
            "use_documents": params.get("use_documents", False),
        },
    )
    runs.submit_run(query)
    return query


def query_wait(*, query: Query) -> Query:
    """Block until the run's event log says ``done``; the stored outcome.

    Waits longer than the worker's hard time limit, so a run that ends at all is seen
    ending. Raises ApplicationError(504) only when no worker took the query.
    """
    log = event_log()
    deadline = time.monotonic() + run_config().budget.json_wait_s
    after: str | None = None
    while (remaining := deadline - time.monotonic()) > 0:
        for entry_id, event in log.read(
            str(query.pk), after=after, block_ms=int(min(remaining, 5) * 1000)
        ):
            after = entry_id
            if event["type"] == "done":
                return dispatcher().outcome(query)
    raise ApplicationError(
        "The answer is taking longer than expected; no worker has finished it. "
        f"Fetch it later from /api/v1/query/{query.pk}, and check that a worker runs.",
        code="query_timeout",
        status=504,
        extra={"query_id": str(query.pk)},
    )


def query_cancel(*, query: Query) -> tuple[Query, bool]:
    """Ask the run to stop; returns (query, whether a stop was requested). Raises nothing."""
    if query.status in FINISHED:
        return query, False
    event_log().request_cancel(str(query.pk))
    return query, True


# ----- the run -----


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


def _images(query: Query) -> list[ImageInput]:
    file_ids = [ObjectId(file_id) for file_id in query.request.get("attachments", [])]
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


def _state_for(query: Query, emit: Any) -> RunState:
    params = query.request
    conversation = params.get("conversation")
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
        temperature=params["temperature"],
        max_tokens=params["max_tokens"],
        web_search=params.get("web_search", False),
        use_memory=params.get("use_memory", True),
        selected_option=params.get("selected_option"),
        images=[],
        # The client's system turns are its system prompt (they take the base prompt's
        # place); its other turns are the model's context as given.
        system_prompt_override=_client_system_prompt(conversation) or params.get("system_prompt"),
        documents=params.get("documents", []),
        use_documents=params.get("use_documents", False),
        conversation=(
            None
            if conversation is None
            else [
                ChatMessage(role=turn["role"], content=turn["content"])
                for turn in conversation
                if turn["role"] != "system"
            ]
        ),
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


def _store_failure(query: Query, error: ApplicationError, state: RunState | None) -> None:
    query.status = Query.Status.FAILED
    query.error = {**error.as_envelope()["error"], "status": error.status}
    if state is not None:
        query.agents_used = state.agents_used
        query.response = state.response
        query.usage = state.usage.as_dict()
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


async def query_execute(query_id: str, *, query: Query | None = None) -> None:
    """Run the query and store its outcome. Raises nothing it can store; idempotent."""
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
        state = _state_for(query, emit)
        if query.request.get("attachments"):
            state.images = await to_thread(_images)(query)
        await _watched(state, budget.engine_deadline_s, run_config().cancel_poll_s)
        await to_thread(_store_outcome)(query, state, (time.perf_counter() - started) * 1000)
        await emit(final_event(query))
    except TimeoutError:
        await _report_failure(query, _timeout_error(budget.engine_deadline_s), state, emit)
    except ApplicationError as exc:  # ProviderError included: stored, then reported
        logger.warning("query %s failed: %s", query_id, exc.message)
        await _report_failure(query, exc, state, emit)
    except Exception:  # the task boundary: a bug must not leave the query "running"
        logger.exception("query %s crashed", query_id)
        await _report_failure(query, internal_error(), state, emit)
    finally:
        heartbeat.cancel()
        # Before ``done``: a client that saw the answer end sees its budget settled.
        await to_thread(_settle_quota)(query)
        message = "Query cancelled" if state is not None and state.cancelled else "Query complete"
        await emit({"type": "done", "message": message})
    _record_metrics(query, total_ms=(time.perf_counter() - started) * 1000)
    if query.status == Query.Status.COMPLETED:
        dispatcher().submit_background("queries.after_completion", str(query.pk))


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
    query: Query, error: ApplicationError, state: RunState | None, emit: Any
) -> None:
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
        error={**error.as_envelope()["error"], "status": error.status},
        completed_at=timezone.now(),
    )
    if not changed:
        return False
    log = event_log()
    query_id = str(query.pk)
    log.append(query_id, {"type": "error", "query_id": query_id, **error.as_envelope()})
    log.append(query_id, {"type": "done", "message": "Query failed"})
    logger.warning("query %s failed: its worker stopped", query_id)
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
    ).only("pk", "status", "request", "usage")
    never_taken = Query.objects.filter(
        status=Query.Status.PENDING,
        timestamp__lt=now - timedelta(seconds=budget.visibility_timeout_s + budget.grace_s),
    ).only("pk", "status", "request", "usage")
    return sum(_fail_lost(query) for query in [*stale, *never_taken])
