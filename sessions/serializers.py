"""Request and response shapes of the session API."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from llmplatform.core.contract import MAX_ID_LENGTH, MAX_TEMPERATURE, MIN_TEMPERATURE
from llmplatform.core.pagination import CursorPageParamsSerializer
from sessions.assignment import (
    MAX_SYSTEM_PROMPT,
    MAX_VARIANTS,
    MIN_VARIANTS,
    OVERRIDE_KEYS,
    VARIANT_NAME_PATTERN,
)
from sessions.models import Event, Experiment, Session
from sessions.selectors import MAX_EVENTS_LIMIT
from sessions.services import (
    EVENT_TYPES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_T,
)

# The shape the service accepts (it checks the same rules and says which one failed).
EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        # null (or left out): the server makes one up.
        "id": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ID_LENGTH,
            "nullable": True,
        },
        "t": {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_T},
        "type": {"type": "string", "enum": list(EVENT_TYPES)},
        "data": {"type": "object", "nullable": True, "description": "at most 16 KB as JSON"},
    },
    "required": ["t", "type"],
    "additionalProperties": False,
}


@extend_schema_field(EVENT_SCHEMA)
class EventField(serializers.JSONField):
    pass


# Session ids appear in URL paths (GET /session/{id}), so they stay URL-safe; the route
# names under /session/ cannot be ids, or the session could never be read back.
RESERVED_SESSION_IDS = frozenset({"start", "event", "events", "end"})
MAX_VIEWPORT_PIXELS = 100_000


def _not_reserved(value: str) -> None:
    if value in RESERVED_SESSION_IDS:
        raise serializers.ValidationError(
            f'"{value}" is reserved; use another session id.', code="reserved"
        )


SESSION_ID_PATTERN = r"^[A-Za-z0-9._:\-]+$"


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ID_LENGTH,
        "pattern": SESSION_ID_PATTERN,
        "not": {"enum": sorted(RESERVED_SESSION_IDS)},
    }
)
class SessionIdField(serializers.CharField):
    def __init__(self, **kwargs) -> None:
        super().__init__(
            max_length=MAX_ID_LENGTH,
            validators=[
                RegexValidator(
                    SESSION_ID_PATTERN,
                    f"Use letters, digits and . _ : - only (at most {MAX_ID_LENGTH} characters).",
                ),
                _not_reserved,
            ],
            **kwargs,
        )


class ViewportSerializer(serializers.Serializer):
    width = serializers.IntegerField(min_value=0, max_value=MAX_VIEWPORT_PIXELS)
    height = serializers.IntegerField(min_value=0, max_value=MAX_VIEWPORT_PIXELS)


class EnvironmentSerializer(serializers.Serializer):
    device = serializers.CharField(max_length=50, required=False, allow_blank=True)
    browser = serializers.CharField(max_length=100, required=False, allow_blank=True)
    os = serializers.CharField(max_length=100, required=False, allow_blank=True)
    viewport = ViewportSerializer(required=False)


class SessionStartSerializer(serializers.Serializer):
    session_id = SessionIdField()
    user_id = serializers.CharField(max_length=MAX_ID_LENGTH)
    environment = EnvironmentSerializer(required=False, default=dict)


class SessionEventSerializer(serializers.Serializer):
    session_id = SessionIdField()
    event = EventField(
        help_text=(
            "{id?: string (client id; re-sending it stores nothing new), t: epoch ms, "
            "type: click|scroll|input|custom|page_view|focus|blur|navigation|error|query, "
            "data?: object of at most 16 KB as JSON}"
        )
    )


# The service answers an empty batch (400 empty_batch) and an oversized one (413
# batch_too_large) with their own codes; the schema states the same bounds.
@extend_schema_field(
    {"type": "array", "items": EVENT_SCHEMA, "minItems": 1, "maxItems": MAX_BATCH_EVENTS},
)
class EventBatchField(serializers.ListField):
    pass


class SessionEventsSerializer(serializers.Serializer):
    session_id = SessionIdField()
    events = EventBatchField(
        child=serializers.JSONField(allow_null=True),
        allow_empty=True,
        help_text=f"1-{MAX_BATCH_EVENTS} events",
    )


class SessionDetailParamsSerializer(serializers.Serializer):
    """The query parameters of GET /session/{id} (validated by the view, documented here)."""

    include_events = serializers.BooleanField(required=False, default=False)
    events_limit = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_EVENTS_LIMIT, help_text="default 100"
    )
    events_cursor = serializers.CharField(
        required=False, help_text="events_next_cursor of the last page"
    )


class SessionEndSerializer(serializers.Serializer):
    session_id = SessionIdField()


class SessionSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()

    class Meta:
        model = Session
        fields = [
            "session_id",
            "user_id",
            "environment",
            "device",
            "experiments",
            "status",
            "start_t",
            "end_t",
            "event_count",
        ]

    def get_status(self, session: Session) -> str:
        return "ended" if session.is_ended else "active"


class EventSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="event_id")

    class Meta:
        model = Event
        fields = ["id", "type", "t", "data", "received_at"]


class EventRejectionSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    reason = serializers.CharField()


class EventBatchResultSerializer(serializers.Serializer):
    session_id = serializers.CharField()
    received = serializers.IntegerField()
    stored = serializers.IntegerField(help_text="new events stored by this request")
    duplicates = serializers.IntegerField(help_text="events whose id was already stored")
    rejected = EventRejectionSerializer(many=True)


# ----- experiments -----


# The variants as OpenAPI describes them: what sessions.assignment.variants_clean accepts
# (which validates them, so the API, admin and services refuse the same things with the
# same messages). Only "names are unique" is beyond a JSON schema.
VARIANTS_SCHEMA = {
    "type": "array",
    "minItems": MIN_VARIANTS,
    "maxItems": MAX_VARIANTS,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "weight"],
        "properties": {
            "name": {
                "type": "string",
                "pattern": VARIANT_NAME_PATTERN,
                "description": '"control" is the baseline results compare against (else the '
                "first); names are unique within the experiment",
            },
            "weight": {
                "type": "number",
                "minimum": 0,
                "exclusiveMinimum": True,  # OpenAPI 3.0's form
                "description": "relative share of users",
            },
            "overrides": {
                "type": "object",
                "additionalProperties": False,
                "description": "what the variant changes; left out: the request's or the default",
                "properties": {
                    "model_provider": {"type": "string", "maxLength": 200},
                    "model_name": {"type": "string", "maxLength": 200},
                    "system_prompt": {"type": "string", "maxLength": MAX_SYSTEM_PROMPT},
                    "temperature": {
                        "type": "number",
                        "minimum": MIN_TEMPERATURE,
                        "maximum": MAX_TEMPERATURE,
                    },
                },
            },
        },
    },
}


@extend_schema_field(VARIANTS_SCHEMA)
class VariantsField(serializers.JSONField):
    pass


_VARIANTS_HELP = (
    f"{MIN_VARIANTS}-{MAX_VARIANTS} variants; overrides may set {', '.join(OVERRIDE_KEYS)}. "
    "A running experiment's variants cannot change: stop it first."
)


# A slug without "__" (admin refuses it too): each character after an optional single "_".
EXPERIMENT_KEY_PATTERN = r"^(_?[A-Za-z0-9-])+_?$"


class ExperimentCreateSerializer(serializers.Serializer):
    key = serializers.RegexField(
        EXPERIMENT_KEY_PATTERN,
        max_length=64,
        error_messages={"invalid": "Use letters, digits, '-' and single '_' (at most 64)."},
        help_text="unique, permanent: sessions and queries record their variant under it",
    )
    # A pattern, not just a length: a name of spaces is blank, and blank is refused.
    name = serializers.RegexField(r"\S", max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    variants = VariantsField(help_text=_VARIANTS_HELP)


class ExperimentUpdateSerializer(serializers.Serializer):
    name = serializers.RegexField(r"\S", max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    variants = VariantsField(required=False, help_text=_VARIANTS_HELP)

    # Named here rather than ignored: a client that sends them expects them to change.
    FIXED = {
        "key": "The key cannot change: exposure is recorded under it. Create a new experiment.",
        "status": "Change the status with POST .../start and .../stop.",
    }

    def validate(self, attrs):
        for field, reason in self.FIXED.items():
            if field in self.initial_data:
                raise serializers.ValidationError({field: [reason]})
        return attrs


class ExperimentSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="pk", read_only=True)
    variants = VariantsField(read_only=True)

    class Meta:
        model = Experiment
        fields = [
            "id",
            "key",
            "name",
            "description",
            "status",
            "variants",
            "created_at",
            "started_at",
            "stopped_at",
        ]


class ExperimentListParamsSerializer(CursorPageParamsSerializer):
    """No filters of its own: cursor and limit."""
