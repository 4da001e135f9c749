"""The query API: ask (JSON), history, detail, feedback, cancel."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from llmplatform.core.pagination import NewestFirstCursorPagination
from llmplatform.core.quotas import rate_limit_headers
from llmplatform.core.schema import paginated
from queries.models import Query
from queries.outcome import error_of
from queries.selectors import query_get, query_history, query_trace
from queries.serializers import (
    FeedbackSerializer,
    QueryHistoryParamsSerializer,
    QueryRequestSerializer,
    QueryResultSerializer,
    QueryTraceSerializer,
)
from queries.services import query_feedback
from queries.start import query_start
from queries.streams import query_cancel, query_wait


class QueryView(APIView):
    @extend_schema(
        summary="Ask a question; the agent pipeline answers (JSON)",
        description=(
            "Missing model_provider/model_name use DEFAULT_MODEL_PROVIDER/DEFAULT_MODEL_NAME; "
            "without any provider key the offline `local` model (demo quality) answers. "
            "mode=shopping runs a three-round interview: answer its `options` with "
            "`selected_option`."
        ),
        request=QueryRequestSerializer,
        responses={200: QueryResultSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = QueryRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        params = serializer.question()
        query = query_wait(
            query=query_start(owner=request.user, params=params, api_key=request.auth)
        )
        limits = rate_limit_headers(api_key=request.auth, user_id=params.user_id)
        if query.status == Query.Status.FAILED:
            error = error_of(query.error)
            error.extra = {**error.extra, "query_id": str(query.pk)}
            return Response(error.as_envelope(), status=error.status, headers=limits)
        return Response(QueryResultSerializer(query).data, headers=limits)


class QueryHistoryView(APIView):
    @extend_schema(
        summary="Your queries, newest first (cursor pagination)",
        parameters=[QueryHistoryParamsSerializer],
        responses={200: paginated(QueryResultSerializer, name="PaginatedQueryResultList")},
    )
    def get(self, request: Request) -> Response:
        # The paginator ignores a bad limit; a client asking for limit=abc gets a 400.
        params = QueryHistoryParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        paginator = NewestFirstCursorPagination(ordering="-timestamp")
        page = paginator.paginate_queryset(
            query_history(
                owner=request.user,
                session_id=params.validated_data.get("session_id"),
                user_id=params.validated_data.get("user_id"),
            ),
            request,
            view=self,
        )
        return paginator.get_paginated_response(QueryResultSerializer(page, many=True).data)


class QueryDetailView(APIView):
    @extend_schema(summary="One query and its answer", responses={200: QueryResultSerializer})
    def get(self, request: Request, query_id: str) -> Response:
        return Response(
            QueryResultSerializer(query_get(owner=request.user, query_id=query_id)).data
        )


class QueryTraceView(APIView):
    @extend_schema(
        summary="The trace of one query: every step with its timing and attributes",
        description=(
            "The spans of the query's OpenTelemetry trace, from the built-in store (the "
            "last TRACE_RETENTION_DAYS days): its start, each agent, each provider attempt "
            "(gen_ai.* attributes: model, tokens, cost, finish reason), storing the outcome "
            "and the work that followed. Empty `spans` when the trace was not kept "
            "(TRACE_SAMPLE_RATE) or has expired."
        ),
        responses={200: QueryTraceSerializer},
    )
    def get(self, request: Request, query_id: str) -> Response:
        query = query_get(owner=request.user, query_id=query_id)
        body = {
            "query_id": str(query.pk),
            "trace_id": query.trace_id,
            "spans": query_trace(query=query),
        }
        return Response(QueryTraceSerializer(body).data)


class QueryFeedbackView(APIView):
    @extend_schema(
        summary="Rate an answer: 1 (thumbs up) or -1 (thumbs down)",
        request=FeedbackSerializer,
        responses={200: QueryResultSerializer},
    )
    def post(self, request: Request, query_id: str) -> Response:
        query = query_get(owner=request.user, query_id=query_id)
        serializer = FeedbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        query = query_feedback(query=query, **serializer.validated_data)
        return Response(QueryResultSerializer(query).data)


class QueryCancelView(APIView):
    @extend_schema(
        summary="Stop generating an answer (a finished query is left as it is)",
        request=None,
        responses={
            200: inline_serializer(
                "QueryCancelResult",
                {
                    "query_id": serializers.CharField(),
                    "cancel_requested": serializers.BooleanField(),
                    "status": serializers.CharField(),
                    "message": serializers.CharField(),
                },
            )
        },
    )
    def post(self, request: Request, query_id: str) -> Response:
        query, requested = query_cancel(query=query_get(owner=request.user, query_id=query_id))
        message = (
            "Stop requested: the partial answer is kept with status cancelled."
            if requested
            else f"The query is already {query.status}; nothing to cancel."
        )
        return Response(
            {
                "query_id": str(query.pk),
                "cancel_requested": requested,
                "status": query.status,
                "message": message,
            }
        )


class _StreamingOnlyUnderAsgi(APIView):
    """Documents the SSE endpoints (served by queries.consumers under daphne).

    Django only sees these paths when the app runs without the ASGI router (WSGI, the test
    client); then they say how to reach the stream instead of failing obscurely.
    """

    def _asgi_only(self) -> Response:
        return Response(
            {
                "error": {
                    "code": "streaming_needs_asgi",
                    "message": "Streaming is served by the ASGI application (daphne, "
                    "`make run`); this server is not running it. Use POST /api/v1/query/ "
                    "for a JSON answer.",
                    "details": {},
                }
            },
            status=501,
        )


SSE_DESCRIPTION = (
    "Server-Sent Events, each frame `id: <event id>` + `data: {json}`: "
    '`{"type": "node", "node": "WriterAgent"}`, `{"type": "chunk", "content": "..."}`, '
    '`{"type": "final", "query_id", "response", "options", "product_cards", "citations", '
    '"metadata", ...}`, `{"type": "error", "error": {...}}`, then `{"type": "done"}`. The '
    "first frame carries `query_id`. A `: keep-alive` comment is sent after 15 s of "
    "silence. Disconnecting does not stop the answer; resume with "
    "GET /api/v1/query/{id}/stream and Last-Event-ID: an id at or past the end of a "
    "finished stream gets `done` at once; one that cannot belong to the stream (malformed, "
    "past the end of a live stream, `stored-N` of an unfinished query) is a 400 "
    "`invalid_last_event_id`. Revoking the API key ends an open stream within about a "
    "second: an `error` event (`api_key_revoked`), then `done`. Also over the websocket "
    "/ws/chat/ (messages `query`, `cancel`, `resume`)."
)


class QueryStreamView(_StreamingOnlyUnderAsgi):
    @extend_schema(
        summary="Ask a question and stream the answer (SSE)",
        description=SSE_DESCRIPTION,
        request=QueryRequestSerializer,
        responses={(200, "text/event-stream"): OpenApiTypes.STR},
    )
    def post(self, request: Request) -> Response:
        return self._asgi_only()


class QueryResumeStreamView(_StreamingOnlyUnderAsgi):
    @extend_schema(
        summary="Resume a query's stream after Last-Event-ID (SSE)",
        description=SSE_DESCRIPTION,
        parameters=[
            OpenApiParameter("last_event_id", str, description="or the Last-Event-ID header"),
        ],
        responses={(200, "text/event-stream"): OpenApiTypes.STR},
    )
    def get(self, request: Request, query_id: str) -> Response:
        return self._asgi_only()
