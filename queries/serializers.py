"""Request and response shapes of the query API (the seed's contract, plus extensions)."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from agents.ports import MEMORY_SCOPES
from agents.providers.structured import response_format_parsed, response_format_stored
from llmplatform.core.contract import (
    MAX_ANSWER_TOKENS,
    MAX_ID_LENGTH,
    MAX_TEMPERATURE,
    MIN_ANSWER_TOKENS,
    MIN_TEMPERATURE,
)
from llmplatform.core.models import TraceSpan
from llmplatform.core.pagination import CursorPageParamsSerializer
from queries.models import Query
from queries.question import QuestionParams
from sessions.serializers import SessionIdField

MAX_QUERY_CHARS = 8000
MAX_ATTACHMENTS = 4
MAX_DOCUMENTS = 20


# A question as the query API takes it; ``question()`` is what query_start takes. The
# defaults are QuestionParams's, named here so the schema shows them. (A comment, not a
# docstring: the docstring would become the schema's description.)
class QueryRequestSerializer(serializers.Serializer):
    user_id = serializers.CharField(max_length=MAX_ID_LENGTH)
    # The session API's field: a question cannot create a session /session/start refuses.
    session_id = SessionIdField()
    query = serializers.CharField(max_length=MAX_QUERY_CHARS, trim_whitespace=True)
    model_provider = serializers.CharField(max_length=50, required=False, allow_blank=True)
    model_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    mode = serializers.ChoiceField(choices=["chat", "shopping"], default=QuestionParams.mode)
    web_search = serializers.BooleanField(default=QuestionParams.web_search)
    use_memory = serializers.BooleanField(default=QuestionParams.use_memory)
    memory_scope = serializers.ChoiceField(
        choices=MEMORY_SCOPES,
        default=QuestionParams.memory_scope,
        help_text="With use_memory, which past questions may be recalled: user (all of "
        "this end user's conversations) or session (this conversation only)",
    )
    alternative_of = serializers.CharField(
        max_length=64,
        required=False,
        allow_null=True,
        default=QuestionParams.alternative_of,
        help_text="Regenerate or edit and resend: the query id of this session whose turn "
        "this question answers again (its answer becomes an alternative of that turn, and "
        "later questions continue from it); 404 for another session's or an unknown query",
    )
    attachments = serializers.ListField(
        child=serializers.CharField(max_length=int(settings.MAX_FILE_SIZE * 1.4) + 100),
        required=False,
        default=list,
        max_length=MAX_ATTACHMENTS,
        help_text="File ids from /api/v1/files/upload, or image data URLs (data:image/...)",
    )
    documents = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        default=list,
        max_length=MAX_DOCUMENTS,
        help_text="Answer from these documents only (file ids of ready uploads): 404 for an "
        "unknown id or another user's file, 409 while one is not ready",
    )
    use_documents = serializers.BooleanField(
        default=QuestionParams.use_documents,
        help_text="Search all of this end user's ready documents",
    )
    selected_option = serializers.CharField(
        max_length=200,
        required=False,
        allow_null=True,
        default=QuestionParams.selected_option,
        help_text="The option the user picked for the last shopping question",
    )
    temperature = serializers.FloatField(
        min_value=MIN_TEMPERATURE, max_value=MAX_TEMPERATURE, required=False
    )
    max_tokens = serializers.IntegerField(
        min_value=MIN_ANSWER_TOKENS, max_value=MAX_ANSWER_TOKENS, required=False
    )
    response_format = serializers.DictField(
        required=False,
        allow_null=True,
        help_text='Structured output, as OpenAI\'s: {"type": "json_object"}, or {"type": '
        '"json_schema", "json_schema": {name, schema, strict}}; the answer is that JSON '
        "(strict: validated against the schema, 502 structured_output_invalid when the "
        "model's answer does not match it twice). 400 invalid_response_format when "
        "malformed; 400 response_format_unsupported with the local model.",
    )

    def validate_response_format(self, value: dict | None) -> dict | None:
        """OpenAI's shape as stored; ``{"type": "text"}`` is a plain answer (None). Raises
        ApplicationError (400 invalid_response_format) for a malformed one."""
        parsed = None if value is None else response_format_parsed(value)
        return None if parsed is None else response_format_stored(parsed)

    def question(self, **extra: object) -> QuestionParams:
        """The checked request (after ``is_valid``) as query_start's params; ``extra``
        sets what this API does not take (the OpenAI-compatible API's conversation)."""
        return QuestionParams(**self.validated_data, **extra)


class QueryHistoryParamsSerializer(CursorPageParamsSerializer):
    session_id = serializers.CharField(
        max_length=MAX_ID_LENGTH,
        required=False,
        trim_whitespace=False,
        help_text="only this session",
    )
    user_id = serializers.CharField(
        max_length=MAX_ID_LENGTH,
        required=False,
        trim_whitespace=False,
        help_text="only this end user",
    )


class FeedbackSerializer(serializers.Serializer):
    rating = serializers.ChoiceField(choices=[1, -1])
    comment = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class QueryResultSerializer(serializers.ModelSerializer):
    """A stored query as the API returns it (JSON endpoint, history, detail)."""

    query_id = serializers.CharField(source="pk", read_only=True)
    feedback = serializers.SerializerMethodField()

    class Meta:
        model = Query
        fields = [
            "query_id",
            "user_id",
            "session_id",
            "query",
            "response",
            "status",
            "citations",
            "product_cards",
            "options",
            "intent",
            "agents_used",
            "model_provider",
            "model_name",
            "usage",
            "latency",
            "metadata",
            "experiments",
            "error",
            "feedback",
            "timestamp",
            "trace_id",
        ]

    def get_feedback(self, query: Query) -> dict | None:
        if query.feedback_rating is None:
            return None
        return {"rating": query.feedback_rating, "comment": query.feedback_comment}


class TraceSpanSerializer(serializers.ModelSerializer):
    """One step of a question's trace (GET /api/v1/query/{id}/trace)."""

    parent_id = serializers.CharField(allow_blank=True, help_text="'' for the trace's root.")
    start = serializers.DateTimeField(source="started_at")
    end = serializers.DateTimeField(source="ended_at")
    status = serializers.ChoiceField(choices=["unset", "ok", "error"])

    class Meta:
        model = TraceSpan
        fields = [
            "name",
            "trace_id",
            "span_id",
            "parent_id",
            "start",
            "end",
            "duration_ms",
            "attributes",
            "status",
            "status_message",
        ]


class QueryTraceSerializer(serializers.Serializer):
    query_id = serializers.CharField()
    trace_id = serializers.CharField(help_text="'' for a query stored before traces.")
    spans = TraceSpanSerializer(many=True, help_text="By start time.")
