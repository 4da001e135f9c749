"""The chat UI's JSON endpoints (``/chat/api/...``): conversations, feedback, uploads.

Signed-in browser only (the login session, with its CSRF check), and the end user is
always the signed-in user: the page cannot act for another ``user_id``. Each view parses
input, calls one service or selector, renders.
"""

from __future__ import annotations

from dataclasses import asdict

from django.http import FileResponse, HttpResponse
from django.urls import reverse
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.exports import export_filename, transcript_json, transcript_markdown
from chat.selectors import (
    MAX_SEARCH_CHARS,
    account_usage,
    answer_get,
    answer_trace,
    conversation_get,
    conversation_list,
    conversation_search,
    conversation_transcript,
    file_of_end_user_get,
)
from chat.services import (
    conversation_delete,
    conversation_document_attach,
    conversation_document_detach,
    conversation_share_link,
    conversation_share_stop,
)
from files.selectors import file_list
from files.serializers import FileSerializer, FileUploadSerializer
from files.services import document_upload, file_delete, file_download_headers, file_open
from llmplatform.core.contract import MAX_ID_LENGTH
from llmplatform.core.errors import NotFound
from queries.serializers import FeedbackSerializer
from queries.services import query_feedback
from sessions.conversation_data import conversation_answer_settings_set
from sessions.models import ConversationShare
from sessions.serializers import EnvironmentSerializer, SessionIdField
from sessions.services import (
    EVENT_TYPES,
    MAX_TITLE_CHARS,
    conversation_activity_record,
    conversation_leave,
    conversation_rename,
    conversation_start,
)
from sessions.sharing import conversation_share_get

# What the browser cannot report about itself reliably is taken from the request.
MAX_USER_AGENT_CHARS = 512


class ChatApiView(APIView):
    authentication_classes = [SessionAuthentication]
    permission_classes = [IsAuthenticated]
    schema = None  # the page's private API: not part of the public OpenAPI contract

    def end_user(self, request: Request) -> str:
        # Never from the request's parameters or body: the page acts for its own user only.
        return request.user.get_username()


class ConversationStartSerializer(serializers.Serializer):
    session_id = SessionIdField()
    environment = EnvironmentSerializer(required=False, default=dict)
    language = serializers.CharField(max_length=35, required=False, allow_blank=True)
    timezone = serializers.CharField(max_length=64, required=False, allow_blank=True)


class ConversationRenameSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=MAX_TITLE_CHARS, allow_blank=True)


class ActivitySerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=EVENT_TYPES)
    t = serializers.IntegerField(min_value=0)
    id = serializers.CharField(max_length=MAX_ID_LENGTH, required=False)
    data = serializers.DictField(required=False, default=dict)


def _conversation_row(row) -> dict:
    return {**asdict(row), "started_at": row.started_at.isoformat()}


class ConversationListView(ChatApiView):
    def get(self, request: Request) -> Response:
        rows = conversation_list(owner=request.user, user_id=self.end_user(request))
        return Response({"conversations": [_conversation_row(row) for row in rows]})

    def post(self, request: Request) -> Response:
        """Start a conversation: a session like POST /api/v1/session/start, with this
        browser's environment, so it counts in analytics and gets experiment variants."""
        serializer = ConversationStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        environment = {
            **data["environment"],
            "user_agent": request.headers.get("User-Agent", "")[:MAX_USER_AGENT_CHARS],
            "client": "chat-ui",
        }
        for key in ("language", "timezone"):
            if data.get(key):
                environment[key] = data[key]
        result = conversation_start(
            owner=request.user,
            session_id=data["session_id"],
            user_id=self.end_user(request),
            environment=environment,
        )
        return Response(
            {
                "session_id": result.session.session_id,
                "experiments": result.session.experiments,
                "created": result.created,
            },
            status=201 if result.created else 200,
        )


class ConversationDetailView(ChatApiView):
    def get(self, request: Request, session_id: str) -> Response:
        conversation = conversation_get(
            owner=request.user, user_id=self.end_user(request), session_id=session_id
        )
        return Response(
            {
                "session_id": conversation.session.session_id,
                "title": conversation.title,
                "started_at": conversation.session.start_t,
                "ended_at": conversation.session.end_t,
                "experiments": conversation.session.experiments,
                "environment": conversation.session.environment,
                "turns": conversation.turns,
                "usage": asdict(conversation.usage),
                "documents": FileSerializer(conversation.documents, many=True).data,
                "share": _share(request, conversation_share_get(session=conversation.session)),
                "settings": conversation.session.answer_settings or {},
            }
        )

    def delete(self, request: Request, session_id: str) -> Response:
        deleted = conversation_delete(
            owner=request.user, user_id=self.end_user(request), session_id=session_id
        )
        return Response({"session_id": session_id, "deleted": deleted})

    def patch(self, request: Request, session_id: str) -> Response:
        serializer = ConversationRenameSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        session = conversation_rename(
            owner=request.user,
            user_id=self.end_user(request),
            session_id=session_id,
            title=serializer.validated_data["title"],
        )
        return Response({"session_id": session.session_id, "title": session.title})


class ConversationActivityView(ChatApiView):
    def post(self, request: Request, session_id: str) -> Response:
        serializer = ActivitySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = conversation_activity_record(
            owner=request.user,
            user_id=self.end_user(request),
            session_id=session_id,
            event=dict(serializer.validated_data),
        )
        return Response({"stored": result.stored})


class ConversationDocumentSerializer(serializers.Serializer):
    file_id = serializers.CharField(max_length=MAX_ID_LENGTH)


class ConversationDocumentsView(ChatApiView):
    """The conversation's documents: the page asks every question in it with them."""

    def post(self, request: Request, session_id: str) -> Response:
        serializer = ConversationDocumentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        documents = conversation_document_attach(
            owner=request.user,
            user_id=self.end_user(request),
            session_id=session_id,
            file_id=serializer.validated_data["file_id"],
        )
        return Response({"documents": FileSerializer(documents, many=True).data})


class ConversationDocumentView(ChatApiView):
    def delete(self, request: Request, session_id: str, file_id: str) -> Response:
        documents = conversation_document_detach(
            owner=request.user,
            user_id=self.end_user(request),
            session_id=session_id,
            file_id=file_id,
        )
        return Response({"documents": FileSerializer(documents, many=True).data})


class ConversationLeaveView(ChatApiView):
    """The page is going away (``navigator.sendBeacon``, so a form post, not JSON)."""

    parser_classes = [MultiPartParser]

    def post(self, request: Request, session_id: str) -> Response:
        conversation_leave(
            owner=request.user, user_id=self.end_user(request), session_id=session_id
        )
        return Response(status=204)


class AnswerFeedbackView(ChatApiView):
    def post(self, request: Request, query_id: str) -> Response:
        query = answer_get(owner=request.user, user_id=self.end_user(request), query_id=query_id)
        serializer = FeedbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        query = query_feedback(query=query, **serializer.validated_data)
        return Response(
            {
                "query_id": str(query.pk),
                "feedback": {"rating": query.feedback_rating, "comment": query.feedback_comment},
            }
        )


class AnswerTraceView(ChatApiView):
    """GET: the steps of one of the user's answers as a timeline (the answer's "Trace"):
    each span's name, depth under its parent, place and length on the answer's timeline
    (percent), duration, tokens and cost. Attributes are left out: the page shows the
    timing, the API (GET /api/v1/query/{id}/trace) and admin the rest."""

    def get(self, request: Request, query_id: str) -> Response:
        rows = answer_trace(owner=request.user, user_id=self.end_user(request), query_id=query_id)
        steps = [
            {
                "name": row.span.name,
                "depth": row.depth,
                "offset_pct": row.offset_pct,
                "width_pct": row.width_pct,
                "duration_ms": row.span.duration_ms,
                "status": row.span.status,
                "cancelled": row.cancelled,
                "tokens": row.tokens,
                "cost_usd": row.cost_usd,
            }
            for row in rows
        ]
        return Response({"query_id": query_id, "steps": steps})


# The files panel lists this many of the user's files, newest first.
FILES_LISTED = 200


class FileUploadView(ChatApiView):
    """GET: the end user's files, newest first, with their status (the files panel).
    POST: as ``POST /api/v1/files/upload``: a document is queued for ingestion."""

    parser_classes = [MultiPartParser]

    def get(self, request: Request) -> Response:
        files = file_list(owner=request.user, user_id=self.end_user(request)).order_by("-pk")
        return Response({"files": FileSerializer(files[:FILES_LISTED], many=True).data})

    def post(self, request: Request) -> Response:
        serializer = FileUploadSerializer(
            data={"file": request.data.get("file"), "user_id": self.end_user(request)}
        )
        serializer.is_valid(raise_exception=True)
        stored = document_upload(
            owner=request.user,
            user_id=serializer.validated_data["user_id"],
            upload=serializer.validated_data["file"],
        )
        return Response(FileSerializer(stored).data, status=201)


class FileDetailView(ChatApiView):
    """A file's metadata, polled while a document is ingested (``ingestion``, once the
    files app reports it)."""

    def get(self, request: Request, file_id: str) -> Response:
        stored = file_of_end_user_get(
            owner=request.user, user_id=self.end_user(request), file_id=file_id
        )
        return Response(FileSerializer(stored).data)

    def delete(self, request: Request, file_id: str) -> Response:
        """As ``DELETE /api/v1/files/{id}``: its passages, vectors and bytes go too, and
        it drops out of every conversation's documents."""
        stored = file_of_end_user_get(
            owner=request.user, user_id=self.end_user(request), file_id=file_id
        )
        file_delete(file=stored)
        return Response(status=204)


class FileContentView(ChatApiView):
    """The file's bytes for the signed-in page (thumbnails, source links): the same
    headers as ``GET /api/v1/files/{id}/content`` (inline for images and PDF, nosniff,
    a sandboxing CSP), with the login session instead of an API key."""

    def perform_content_negotiation(self, request: Request, force: bool = False):
        # The body is the file itself; only errors are rendered (as JSON).
        return super().perform_content_negotiation(request, force=True)

    def get(self, request: Request, file_id: str) -> FileResponse:
        stored = file_of_end_user_get(
            owner=request.user, user_id=self.end_user(request), file_id=file_id
        )
        response = FileResponse(file_open(file=stored))
        for header, value in file_download_headers(file=stored).items():
            response[header] = value
        return response


class AccountUsageView(ChatApiView):
    """The signed-in account's limits, what is used and what is left (the page's details
    panel): the same windows ``GET /api/v1/usage`` shows for a key."""

    def get(self, request: Request) -> Response:
        usage = account_usage(account=request.user)
        return Response(
            {
                "limits": {window.name: window.as_dict() for window in usage.windows},
                "storage_mb": usage.storage.as_dict(),
            }
        )


class ConversationSearchView(ChatApiView):
    """``?q=``: the user's conversations whose title, questions or answers hold the words."""

    def get(self, request: Request) -> Response:
        text = request.query_params.get("q", "")
        if len(text) > MAX_SEARCH_CHARS:
            raise serializers.ValidationError(
                {"q": [f"Search at most {MAX_SEARCH_CHARS} characters."]}
            )
        hits = conversation_search(owner=request.user, user_id=self.end_user(request), text=text)
        return Response(
            {
                "query": text,
                "conversations": [
                    {**asdict(hit), "started_at": hit.started_at.isoformat()} for hit in hits
                ],
            }
        )


EXPORT_FORMATS = {
    "md": ("text/markdown; charset=utf-8", transcript_markdown),
    "json": ("application/json; charset=utf-8", transcript_json),
}


class ConversationExportView(ChatApiView):
    """The whole conversation as a download: ``export/md`` or ``export/json``."""

    def get(self, request: Request, session_id: str, kind: str) -> HttpResponse:
        if kind not in EXPORT_FORMATS:
            raise NotFound(f'Export format "{kind[:20]}"')
        content_type, render = EXPORT_FORMATS[kind]
        transcript = conversation_transcript(
            owner=request.user, user_id=self.end_user(request), session_id=session_id
        )
        return HttpResponse(
            render(transcript),
            content_type=content_type,
            headers={
                "Content-Disposition": f'attachment; filename="{export_filename(transcript, kind)}"'
            },
        )


def _share(request: Request, share: ConversationShare | None) -> dict | None:
    if share is None:
        return None
    return {
        "url": request.build_absolute_uri(reverse("chat-shared", args=[share.token])),
        "created_at": share.created_at.isoformat(),
    }


class ConversationShareView(ChatApiView):
    """The conversation's read-only link: POST makes it (or returns the live one), DELETE
    revokes it."""

    def post(self, request: Request, session_id: str) -> Response:
        share = conversation_share_link(
            owner=request.user, user_id=self.end_user(request), session_id=session_id
        )
        return Response({"share": _share(request, share)}, status=201)

    def delete(self, request: Request, session_id: str) -> Response:
        revoked = conversation_share_stop(
            owner=request.user, user_id=self.end_user(request), session_id=session_id
        )
        return Response({"revoked": revoked})


class ConversationSettingsSerializer(serializers.Serializer):
    # Each may be null or blank: "left open" (the question's own choice, an experiment's
    # or the server's default answers). Checked further by the service.
    model_provider = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    model_name = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    system_prompt = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False
    )
    temperature = serializers.FloatField(required=False, allow_null=True)


class ConversationSettingsView(ChatApiView):
    """The conversation's answer settings: PUT replaces all of them."""

    def put(self, request: Request, session_id: str) -> Response:
        serializer = ConversationSettingsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        session = conversation_answer_settings_set(
            owner=request.user,
            user_id=self.end_user(request),
            session_id=session_id,
            settings=dict(serializer.validated_data),
        )
        return Response({"session_id": session.session_id, "settings": session.answer_settings})
