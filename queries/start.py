"""Checking and admitting a question: the one entry of every edge, ``query_start``.

Everything that can be refused is checked before money is spent (the ``check_*``
functions: the client's messages and tools (``queries.client_turns``), web search,
structured output and tool support; then the session, the model
and the experiments, the named documents); then the question is admitted against the
caller's limits (``queries.admission``). Only then is the Query stored (``pending``, for a
worker) and its run handed to the dispatcher, by name (``RUN_TASK``); ``queries.run``
executes it. A run in this process starts first and its row (``running``, id made here)
is stored beside it, so the insert is not before the first token.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from agents import memory
from agents.ports import MemoryReads, Scope, Turn
from agents.providers.base import Sampling, capability_error, sampling_error
from agents.providers.embeddings import get_embedder
from agents.providers.registry import (
    available_providers,
    default_model_for,
    default_provider,
    get_chat_provider,
    providers_sampling,
    providers_supporting,
)
from agents.providers.structured import needs_validation, response_format_parsed
from files.charges import Payer
from files.selectors import documents_ready, file_get
from files.services import file_check, file_upload
from llmplatform.core import tracing
from llmplatform.core.bridge import started_beside
from llmplatform.core.config import provider_config, run_config
from llmplatform.core.dispatch import dispatcher
from llmplatform.core.errors import ApplicationError, NotFound
from llmplatform.core.event_log import event_log
from llmplatform.core.models import ApiKey
from llmplatform.core.quotas import quota_admit, quota_settle
from queries.admission import question_reservation
from queries.client_turns import (
    check_client_messages,
    check_tools,
    check_tools_supported,
    client_system_prompt,
    uses_tools,
)
from queries.memory_store import latest_summary, memory_refresh, recent_turns
from queries.models import Query
from queries.question import QuestionParams
from sessions.selectors import conversation_answer_settings, session_variants
from sessions.services import session_for_query, session_query_record

logger = logging.getLogger(__name__)

# The Celery task (``queries.tasks``) and in-process runner (``queries.apps``) of a run.
RUN_TASK = "queries.run_query"

_DATA_URL = re.compile(r"^data:(image/(?:png|jpeg|gif|webp));base64,(.+)$", re.DOTALL)


def _attachment_ids(*, owner: User, payer: Payer, attachments: list[str]) -> list[str]:
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


def _choices(
    *,
    params: QuestionParams,
    messages: list[dict[str, Any]] | None,
    session: Any,
    conversation: dict[str, Any],
    evaluation: str | None,
) -> _Choices:
    """The request's own choices win; an experiment varies only what the request left
    open, and the query is recorded as exposed to it or excluded from it (with why).
    Raises ApplicationError (400)."""
    # The conversation's own answer settings (the chat UI's, ``conversation``) count as
    # the request's: they fill what the question left open, and no experiment varies them.
    requested_provider = params.model_provider
    requested_model = params.model_name
    if not (requested_provider or requested_model) and conversation.get("model_provider"):
        requested_provider = conversation["model_provider"]
        requested_model = conversation.get("model_name")
    requested_temperature = params.temperature
    if requested_temperature is None and conversation.get("temperature") is not None:
        requested_temperature = float(conversation["temperature"])
    requested = {
        "model_provider": requested_provider,
        "model_name": requested_model,
        "temperature": requested_temperature,
    }
    # A client that sends its own system prompt is not given an experiment's.
    client_system = client_system_prompt(messages)
    conversation_system = None if client_system else conversation.get("system_prompt")
    applied: dict[str, Any] = {}
    variants: dict[str, str] = {}
    excluded: dict[str, dict[str, str]] = {}
    claimed: set[str] = set()
    # An evaluation pins every choice itself and is never part of an experiment.
    assignments = [] if evaluation else session_variants(session=session)
    for assigned in assignments:  # oldest experiment first
        reason = _exposure(
            assigned=assigned,
            requested=requested,
            client_system=client_system or conversation_system,
            claimed=claimed,
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
        system_prompt=conversation_system or applied.get("system_prompt"),
        variants=variants,
        excluded=excluded,
    )


def check_web_search(provider: str) -> None:
    """Refuse web search with a provider that cannot do it, naming those that can.
    Raises ApplicationError (400)."""
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


def check_response_format_supported(provider: str) -> None:
    """Refuse structured output with a provider that cannot produce it (the local model),
    naming those that can, before admission or any vendor call. Raises ApplicationError
    (400 ``response_format_unsupported``)."""
    if get_chat_provider(provider).supports_response_format:
        return
    refusal = capability_error(
        provider=provider,
        feature="response_format",
        supported_by=providers_supporting("response_format"),
    )
    raise ApplicationError(
        refusal.message,
        code=refusal.code,
        status=refusal.status,
        extra={**refusal.extra, "param": "response_format"},
    )


def check_sampling_supported(provider: str, sampling: dict[str, Any] | None) -> None:
    """Refuse stop, seed or a penalty that ``provider`` cannot honour (OpenAI's 400
    ``unsupported_parameter`` naming the field and the providers that can), before
    admission or any vendor call: a field is honoured or refused, never dropped."""
    honoured = get_chat_provider(provider).sampling_fields
    for name in Sampling.of(sampling).used():
        if name not in honoured:
            raise sampling_error(
                provider=provider, name=name, supported_by=providers_sampling(name)
            )


def _memory_reads(
    *,
    owner: User,
    params: QuestionParams,
    messages: list[dict[str, Any]] | None,
    in_process: bool,
) -> MemoryReads | None:
    """The memory step's reads, started on other threads while the request's choices are
    made and the question admitted (none of their reads needs them). None when memory is
    off: nothing is read.

    The session's stored turns the prompt will carry (unless the client sends its own
    messages) are what admission reserves for. For a run in this process, the session's
    summary is read and the end user's vector matrix brought up to date too, and all of
    it is handed to the run (``RunState.memory_reads``): the memory step then only
    embeds the question and searches. A worker's run reads them itself."""
    if not params.use_memory:
        return None
    scope = Scope(
        owner_id=str(owner.pk),
        user_id=params.user_id,
        session_id=params.session_id,
        query_id="",
    )
    turns = None if messages is not None else started_beside(_recent_turns_traced, scope)
    if not in_process:
        return MemoryReads(
            recent_turns=turns, summary=None, vectors_refresh=None, vectors_since=None
        )
    embedder = get_embedder()
    vectors_since = datetime.now(UTC)
    return MemoryReads(
        recent_turns=turns,
        summary=started_beside(_latest_summary_traced, scope),
        vectors_refresh=started_beside(
            _memory_refresh_traced,
            scope,
            embedding_model=embedder.model,
            dimensions=embedder.dimensions,
            fresh_since=vectors_since,
        ),
        vectors_since=vectors_since,
    )


def _answer_settings_traced(*, owner: User, session_id: str) -> dict[str, Any]:
    with tracing.span("session.answer_settings"):
        return conversation_answer_settings(owner=owner, session_id=session_id)


def _recent_turns_traced(scope: Scope) -> list[Turn]:
    with tracing.span("memory.recent_turns"):
        return recent_turns(scope, limit=memory.HISTORY_TURNS)


def _latest_summary_traced(scope: Scope) -> str | None:
    with tracing.span("memory.summary"):
        return latest_summary(scope)


def _memory_refresh_traced(scope: Scope, **refresh: Any) -> None:
    with tracing.span("memory.refresh"):
        memory_refresh(scope, **refresh)


def _admit(
    *,
    api_key: ApiKey | None,
    owner: User,
    params: QuestionParams,
    choices: _Choices,
    messages: list[dict[str, Any]] | None,
    documents: list[str],
    history: list[Turn] | None,
) -> dict | None:
    """Count the question against the key's limits (the owner account's without a key:
    the signed-in chat UI), reserving the most it can use (``queries.admission``).
    Raises ApplicationError (429)."""
    reservation = question_reservation(
        provider=choices.provider,
        model=choices.model,
        text=params.query,
        mode=params.mode,
        max_tokens=params.max_tokens or run_config().default_max_tokens,
        client_messages=messages,
        system_prompt=client_system_prompt(messages) or choices.system_prompt,
        tools=params.tools,
        tool_turns=params.tool_turns,
        use_memory=params.use_memory,
        use_documents=bool(documents) or params.use_documents,
        images=len(params.attachments),
        history=[(turn.question, turn.answer) for turn in history or ()],
        strict_answer=params.response_format is not None
        and needs_validation(response_format_parsed(params.response_format)),
    )
    return quota_admit(
        api_key=api_key,
        account=owner if api_key is None else None,
        user_id=params.user_id,
        tokens_estimate=reservation.tokens,
        usd_estimate=reservation.usd,
    )


def _alternative_root(*, owner: User, params: QuestionParams) -> str | None:
    """The first query of the turn ``params.alternative_of`` belongs to (alternatives of
    an alternative join the same turn). Raises NotFound for an unknown query or one of
    another owner, end user or session."""
    if params.alternative_of is None:
        return None
    if not ObjectId.is_valid(params.alternative_of):
        raise NotFound("Query")
    earlier = (
        Query.objects.filter(
            pk=ObjectId(params.alternative_of),
            owner=owner,
            user_id=params.user_id,
            session_id=params.session_id,
        )
        .only("metadata")
        .first()
    )
    if earlier is None:
        raise NotFound("Query")
    return (earlier.metadata or {}).get("alternative_of") or str(earlier.pk)


def query_start(
    *,
    owner: User,
    params: QuestionParams,
    api_key: ApiKey | None = None,
    evaluation: str | None = None,
) -> Query:
    """Store a pending Query for validated ``params`` and dispatch its run.

    Traced as ``query.start`` (the root of the question's trace, or a child of the
    client's ``traceparent``); the run continues the trace, whose id the Query keeps.
    See ``_started``. Raises ApplicationError (400, 404, 413, 415, 429).
    """
    attributes = {"llmplatform.mode": params.mode, "enduser.id": params.user_id}
    with tracing.span("query.start", attributes) as start_span:
        query = _started(owner=owner, params=params, api_key=api_key, evaluation=evaluation)
        tracing.set_attributes(
            start_span,
            {
                tracing.QUERY_ID: str(query.pk),
                "gen_ai.system": query.model_provider,
                "gen_ai.request.model": query.model_name,
            },
        )
        return query


def _started(
    *,
    owner: User,
    params: QuestionParams,
    api_key: ApiKey | None,
    evaluation: str | None,
) -> Query:
    """Store a pending Query for validated ``params`` and dispatch its run.

    The one entry of every edge. The session is started through ``session_start`` when
    it is new, so every query counts in analytics and experiments. ``api_key`` is the
    caller whose limits and budgets apply; without one (the signed-in chat UI) the
    owner's account limits apply. A refusal comes before anything is stored or any
    provider is called. ``evaluation`` is the evaluation run asking (its id), if any.
    Raises ApplicationError (400, 404, 413, 415, 429).
    """
    messages = check_client_messages(params)
    check_tools(params)
    runs = dispatcher()
    running = runs.starts_runs_at_once
    reads = _memory_reads(owner=owner, params=params, messages=messages, in_process=running)
    # A fresh read (the chat UI may have changed them in another process), beside the
    # session's: the session is usually known to this process and read from its memory.
    conversation = (
        None
        if evaluation
        else started_beside(_answer_settings_traced, owner=owner, session_id=params.session_id)
    )
    with tracing.span("query.session", {"session.id": params.session_id}):
        session = session_for_query(
            owner=owner, session_id=params.session_id, user_id=params.user_id
        )
    choices = _choices(
        params=params,
        messages=messages,
        session=session,
        conversation={} if conversation is None else conversation.result(),
        evaluation=evaluation,
    )
    if params.web_search:
        check_web_search(choices.provider)
    if params.response_format is not None:
        check_response_format_supported(choices.provider)
    check_sampling_supported(choices.provider, params.sampling)
    if uses_tools(params):
        check_tools_supported(choices.provider, params)
    # Named documents are checked before admission: a 404 or 409 costs no quota.
    alternative_of = _alternative_root(owner=owner, params=params)
    documents = documents_ready(owner=owner, user_id=params.user_id, file_ids=params.documents)
    history = None if reads is None or reads.recent_turns is None else reads.recent_turns.result()
    with tracing.span("query.admission"):
        reservation = _admit(
            api_key=api_key,
            owner=owner,
            params=params,
            choices=choices,
            messages=messages,
            documents=documents,
            history=history,
        )
    try:
        payer = Payer(
            api_key=api_key,
            account=owner if api_key is None else None,
            user_id=params.user_id,
        )
        attachments = _attachment_ids(owner=owner, payer=payer, attachments=params.attachments)
    except ApplicationError:
        # Refused after admission: the question used nothing.
        quota_settle(reservation, run_id=str(ObjectId()), tokens=0, usd=0.0)
        raise
    query = Query(
        pk=ObjectId(),
        status=Query.Status.RUNNING if running else Query.Status.PENDING,
        heartbeat_at=timezone.now() if running else None,
        owner=owner,
        user_id=params.user_id,
        session_id=params.session_id,
        query=params.query,
        mode=params.mode,
        model_provider=choices.provider,
        model_name=choices.model,
        experiments=choices.variants,
        experiments_excluded=choices.excluded,
        trace_id=tracing.trace_id_of(tracing.current_span()),
        # An evaluation run's questions are marked so analytics and memory leave them out.
        metadata={
            **({"evaluation": evaluation} if evaluation else {}),
            **({"alternative_of": alternative_of} if alternative_of else {}),
        },
        request={
            "web_search": params.web_search,
            "use_memory": params.use_memory,
            "memory_scope": params.memory_scope,
            "attachments": attachments,
            "selected_option": params.selected_option,
            "temperature": choices.temperature,
            "max_tokens": params.max_tokens or run_config().default_max_tokens,
            "system_prompt": choices.system_prompt,
            "messages": messages,
            "quota": reservation,
            "documents": documents,
            "use_documents": params.use_documents,
            "response_format": params.response_format,
            "tools": params.tools,
            "tool_choice": params.tool_choice,
            "parallel_tool_calls": params.parallel_tool_calls,
            "tool_turns": params.tool_turns,
            "sampling": params.sampling,
            "client_request": params.client_request,
        },
    )
    if running:
        _run_beside_insert(runs, query, session=session, memory_reads=reads)
    else:  # a worker reads the row: it is stored first
        query.save(force_insert=True)
        runs.submit_run(RUN_TASK, str(query.pk), query=query)
        _session_counted(session=session, at=query.timestamp)
    return query


def _run_beside_insert(
    runs: Any, query: Query, *, session: Any, memory_reads: MemoryReads | None
) -> None:
    """Start the run of ``query`` (made here, id included) in this process, then store
    it while the run works: the insert is no longer before the first token. Its
    ``session`` counts it at the same time, on another thread. The run is handed the
    ``memory_reads`` the start began (it does not make them again).

    This returns once the row exists, so no client learns the id of a row that is not
    there. The run writes the row only once ``written`` says it exists and is counted
    (``queries.run``): a client that sees the answer end sees its session's count. If
    the insert fails, the run is asked to stop, stores nothing, and the error is raised
    (the edge's 500).
    """
    written: Future[None] = Future()
    runs.submit_run(
        RUN_TASK, str(query.pk), query=query, written=written, memory_reads=memory_reads
    )
    # Should the insert fail (the database is down: a 500), the session may have counted
    # a question that is not stored; nothing is charged for it.
    counted = started_beside(_session_counted, session=session, at=query.timestamp)
    try:
        with tracing.span("query.insert"):
            query.save(force_insert=True)
    except BaseException as exc:
        written.set_exception(exc)
        event_log().request_cancel(str(query.pk))
        raise
    counted.add_done_callback(lambda _: written.set_result(None))


def _session_counted(*, session: Any, at: Any) -> None:
    """``session_query_record`` once the question is on its way: a failure costs the
    session one in its count (logged), never the answer (the run has started)."""
    try:
        session_query_record(session=session, at=at)
    except Exception:
        logger.exception("session %s: a question was not counted", session.pk)
