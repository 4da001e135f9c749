"""The session API (``/api/v1/session/...``) and experiments (``/api/v1/experiments``).

Experiment results (``GET /api/v1/experiments/{id}/results``) read queries: they are served
by ``analytics.views``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from llmplatform.core.errors import ApplicationError
from llmplatform.core.json_body import DepthLimitedJSONParser
from llmplatform.core.pagination import NewestFirstCursorPagination
from llmplatform.core.schema import error_response, paginated
from sessions.experiments import (
    experiment_create,
    experiment_delete,
    experiment_start,
    experiment_stop,
    experiment_update,
)
from sessions.selectors import (
    DEFAULT_EVENTS_LIMIT,
    MAX_EVENTS_LIMIT,
    experiment_get,
    experiment_list,
    session_events_page,
    session_get,
    session_metrics_document,
)
from sessions.serializers import (
    EventBatchResultSerializer,
    EventSerializer,
    ExperimentCreateSerializer,
    ExperimentListParamsSerializer,
    ExperimentSerializer,
    ExperimentUpdateSerializer,
    SessionDetailParamsSerializer,
    SessionEndSerializer,
    SessionEventSerializer,
    SessionEventsSerializer,
    SessionSerializer,
    SessionStartSerializer,
)
from sessions.services import (
    session_end,
    session_event_track,
    session_events_track,
    session_start,
)

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


def _bool_param(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "").lower()
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise ApplicationError(f'"{name}" must be true or false.', code="invalid_parameter")


def _limit_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise ApplicationError(
            f'"{name}" must be an integer from 1 to {maximum}.', code="invalid_parameter"
        )
    return value


class JsonApiView(APIView):
    """Bodies are JSON only: no form or multipart variants for clients (or the schema)."""

    parser_classes = [DepthLimitedJSONParser]


_SESSION_CONFLICT = error_response(
    409, "session_conflict: this session id was started for another user_id"
)
_SESSION_ENDED = error_response(409, "session_ended: the session has ended; start a new one")


class SessionStartView(JsonApiView):
    @extend_schema(
        summary="Start a session (idempotent per session_id) and assign running experiments",
        request=SessionStartSerializer,
        responses={201: SessionSerializer, 200: SessionSerializer, 409: _SESSION_CONFLICT},
    )
    def post(self, request: Request) -> Response:
        serializer = SessionStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = session_start(owner=request.user, **serializer.validated_data)
        return Response(
            SessionSerializer(result.session).data, status=201 if result.created else 200
        )


class SessionEventView(JsonApiView):
    @extend_schema(
        summary="Record one event (re-sending the same event id stores it once)",
        request=SessionEventSerializer,
        responses={
            201: EventBatchResultSerializer,
            200: EventBatchResultSerializer,
            409: _SESSION_ENDED,
            413: error_response(413, "event_data_too_large: data over 16 KB as JSON"),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = SessionEventSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = session_event_track(owner=request.user, **serializer.validated_data)
        return Response(
            EventBatchResultSerializer(result).data, status=201 if result.stored else 200
        )


class SessionEventsView(JsonApiView):
    @extend_schema(
        summary="Record up to 500 events; valid ones are stored, rejected ones are listed",
        request=SessionEventsSerializer,
        responses={
            200: EventBatchResultSerializer,
            409: _SESSION_ENDED,
            413: error_response(413, "batch_too_large: more than 500 events"),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = SessionEventsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = session_events_track(owner=request.user, **serializer.validated_data)
        return Response(EventBatchResultSerializer(result).data)


class SessionDetailView(APIView):
    @extend_schema(
        summary="A session with its metrics and, optionally, a page of its events",
        parameters=[SessionDetailParamsSerializer],
        responses={200: SessionSerializer},
    )
    def get(self, request: Request, session_id: str) -> Response:
        # Every parameter is checked, used or not: a bad one is a 400 either way.
        include_events = _bool_param(request, "include_events")
        limit = _limit_param(request, "events_limit", DEFAULT_EVENTS_LIMIT, MAX_EVENTS_LIMIT)
        SessionDetailParamsSerializer(data=request.query_params).is_valid(raise_exception=True)
        session = session_get(owner=request.user, session_id=session_id)
        body = SessionSerializer(session).data
        body["metrics"] = session_metrics_document(session=session)
        body["query_count"] = body["metrics"]["query_count"]
        if include_events:
            page = session_events_page(
                session=session,
                limit=limit,
                cursor=request.query_params.get("events_cursor") or None,
            )
            body["events"] = EventSerializer(page.events, many=True).data
            body["events_next_cursor"] = page.next_cursor
        return Response(body)


class SessionEndView(JsonApiView):
    @extend_schema(
        summary="End a session and store its final metrics (ending twice is a no-op)",
        request=SessionEndSerializer,
        responses={200: SessionSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = SessionEndSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = session_end(owner=request.user, **serializer.validated_data)
        body = SessionSerializer(result.session).data
        body["metrics"] = result.session.metrics
        body["query_count"] = result.session.query_count
        body["already_ended"] = result.already_ended
        return Response(body)


# ----- experiments -----

_KEY_TAKEN = error_response(
    409, "experiment_key_taken: one of your experiments (or an operator-wide one) has this key"
)
_RUNNING = error_response(
    409, "experiment_running: stop the experiment before changing its variants"
)


class ExperimentListView(JsonApiView):
    @extend_schema(
        summary="List your experiments, newest first (cursor pagination)",
        operation_id="experiments_list",
        parameters=[ExperimentListParamsSerializer],
        responses={200: paginated(ExperimentSerializer, name="PaginatedExperimentList")},
    )
    def get(self, request: Request) -> Response:
        params = ExperimentListParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        paginator = NewestFirstCursorPagination(ordering="-created_at")
        page = paginator.paginate_queryset(experiment_list(owner=request.user), request, view=self)
        return paginator.get_paginated_response(ExperimentSerializer(page, many=True).data)

    @extend_schema(
        summary="Create a draft experiment; it assigns your sessions once started",
        operation_id="experiments_create",
        request=ExperimentCreateSerializer,
        responses={201: ExperimentSerializer, 409: _KEY_TAKEN},
    )
    def post(self, request: Request) -> Response:
        serializer = ExperimentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        experiment = experiment_create(owner=request.user, **serializer.validated_data)
        return Response(ExperimentSerializer(experiment).data, status=201)


class ExperimentDetailView(JsonApiView):
    @extend_schema(summary="One of your experiments", responses={200: ExperimentSerializer})
    def get(self, request: Request, experiment_id: str) -> Response:
        experiment = experiment_get(owner=request.user, experiment_id=experiment_id)
        return Response(ExperimentSerializer(experiment).data)

    @extend_schema(
        summary="Change name, description or variants (variants only while not running)",
        request=ExperimentUpdateSerializer,
        responses={200: ExperimentSerializer, 409: _RUNNING},
    )
    def patch(self, request: Request, experiment_id: str) -> Response:
        experiment = experiment_get(owner=request.user, experiment_id=experiment_id)
        serializer = ExperimentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        experiment = experiment_update(experiment=experiment, **serializer.validated_data)
        return Response(ExperimentSerializer(experiment).data)

    @extend_schema(
        summary="Delete an experiment that never ran (one that ran is stopped instead)",
        responses={
            204: None,
            409: error_response(409, "experiment_has_run: stop it; its results stay"),
        },
    )
    def delete(self, request: Request, experiment_id: str) -> Response:
        experiment_delete(
            experiment=experiment_get(owner=request.user, experiment_id=experiment_id)
        )
        return Response(status=204)


class ExperimentStartView(JsonApiView):
    @extend_schema(
        summary="Start (or restart) an experiment: new sessions of yours get a variant",
        request=None,
        responses={200: ExperimentSerializer},
    )
    def post(self, request: Request, experiment_id: str) -> Response:
        experiment = experiment_get(owner=request.user, experiment_id=experiment_id)
        return Response(ExperimentSerializer(experiment_start(experiment=experiment)).data)


class ExperimentStopView(JsonApiView):
    @extend_schema(
        summary="Stop an experiment: no new assignments, no overrides (idempotent)",
        request=None,
        responses={200: ExperimentSerializer},
    )
    def post(self, request: Request, experiment_id: str) -> Response:
        experiment = experiment_get(owner=request.user, experiment_id=experiment_id)
        return Response(ExperimentSerializer(experiment_stop(experiment=experiment)).data)
