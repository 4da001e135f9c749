"""The session API (``/api/v1/session/...``) and analytics (``/api/v1/analytics/summary``)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from llmplatform.core.errors import ApplicationError
from sessions.selectors import (
    DEFAULT_EVENTS_LIMIT,
    MAX_EVENTS_LIMIT,
    analytics_range,
    analytics_summary,
    session_events_page,
    session_get,
    session_metrics_document,
)
from sessions.serializers import (
    EventBatchResultSerializer,
    EventSerializer,
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


class SessionStartView(APIView):
    @extend_schema(
        summary="Start a session (idempotent per session_id) and assign running experiments",
        request=SessionStartSerializer,
        responses={201: SessionSerializer, 200: SessionSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = SessionStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = session_start(owner=request.user, **serializer.validated_data)
        return Response(
            SessionSerializer(result.session).data, status=201 if result.created else 200
        )


class SessionEventView(APIView):
    @extend_schema(
        summary="Record one event (re-sending the same event id stores it once)",
        request=SessionEventSerializer,
        responses={201: EventBatchResultSerializer, 200: EventBatchResultSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = SessionEventSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = session_event_track(owner=request.user, **serializer.validated_data)
        return Response(
            EventBatchResultSerializer(result).data, status=201 if result.stored else 200
        )


class SessionEventsView(APIView):
    @extend_schema(
        summary="Record up to 500 events; valid ones are stored, rejected ones are listed",
        request=SessionEventsSerializer,
        responses={200: EventBatchResultSerializer},
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
        session = session_get(owner=request.user, session_id=session_id)
        body = SessionSerializer(session).data
        body["metrics"] = session_metrics_document(session=session)
        body["query_count"] = body["metrics"]["query_count"]
        if _bool_param(request, "include_events"):
            page = session_events_page(
                session=session,
                limit=_limit_param(request, "events_limit", DEFAULT_EVENTS_LIMIT, MAX_EVENTS_LIMIT),
                cursor=request.query_params.get("events_cursor") or None,
            )
            body["events"] = EventSerializer(page.events, many=True).data
            body["events_next_cursor"] = page.next_cursor
        return Response(body)


class SessionEndView(APIView):
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


class AnalyticsSummaryView(APIView):
    @extend_schema(
        summary="Per-day sessions, queries, events, average duration, tokens and cost by model",
        parameters=[
            OpenApiParameter("from", str, description="ISO date, inclusive; default to - 6 days"),
            OpenApiParameter("to", str, description="ISO date, inclusive (UTC); default today"),
        ],
        responses={200: inline_serializer("AnalyticsSummary", {"days": serializers.ListField()})},
    )
    def get(self, request: Request) -> Response:
        start, end = analytics_range(
            start=request.query_params.get("from"), end=request.query_params.get("to")
        )
        return Response(analytics_summary(owner=request.user, start=start, end=end))
