"""Request bodies of /v1 (checked here, documented in /openapi.json) and the shapes of its
answers (documented only: they are rendered by ``openai_compat.chat`` as OpenAI sends them).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.ports import MEMORY_SCOPES
from agents.providers.base import MAX_STOP_SEQUENCES, MAX_TOP_LOGPROBS
from llmplatform.core.contract import (
    MAX_ANSWER_TOKENS,
    MAX_ID_LENGTH,
    MAX_TEMPERATURE,
    MIN_ANSWER_TOKENS,
    MIN_TEMPERATURE,
)
from queries.client_turns import MAX_CLIENT_MESSAGES

# OpenAI chat fields this API does not honour, with the values that change nothing (the
# defaults SDKs and frameworks send unasked): these, null or empty, pass; any other value
# is refused, and so is any field OpenAI does not define.
_DEFAULTS: dict[str, tuple[object, ...]] = {
    "top_p": (1, 1.0),
    "store": (False,),
    "service_tier": ("auto", "default"),
}
_UNHONOURED = {
    *_DEFAULTS,
    "logit_bias",
    "reasoning_effort",
    "modalities",
    "audio",
    "prediction",
    "verbosity",
    "prompt_cache_key",
    "safety_identifier",
}

# OpenAI's own cap on inputs per embeddings request.
MAX_EMBEDDING_INPUTS = 2048


# OpenAI's range of presence_penalty and frequency_penalty.
MAX_PENALTY = 2.0

# The most choices (``n``) one chat completion asks for: each is a question of its own
# (stored, billed and admitted as one), so n multiplies what one request costs.
MAX_CHOICES = 8


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "maxItems": MAX_STOP_SEQUENCES},
        ],
        "nullable": True,
    }
)
class StopField(serializers.JSONField):
    """OpenAI's ``stop``: a string or up to 4 strings, as a list of the non-empty ones."""

    def to_internal_value(self, data: object) -> list[str]:
        stops = [data] if isinstance(data, str) else data
        if (
            not isinstance(stops, list)
            or len(stops) > MAX_STOP_SEQUENCES
            or not all(isinstance(stop, str) for stop in stops)
        ):
            raise serializers.ValidationError(
                f"stop must be a string or a list of up to {MAX_STOP_SEQUENCES} strings."
            )
        return [stop for stop in stops if stop]


class OpenAISamplingSerializer(serializers.Serializer):
    """stop, seed, the penalties and logprobs as OpenAI takes them; each provider honours
    some, and one asked of a provider that cannot is 400 unsupported_parameter naming it."""

    stop = StopField(
        required=False,
        allow_null=True,
        help_text="a string or up to 4: the answer ends before any of them (every provider)",
    )
    seed = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="best-effort reproducible sampling (openai, openrouter, google)",
    )
    presence_penalty = serializers.FloatField(
        min_value=-MAX_PENALTY,
        max_value=MAX_PENALTY,
        required=False,
        allow_null=True,
        help_text="openai, openrouter, google (0, the default, anywhere)",
    )
    frequency_penalty = serializers.FloatField(
        min_value=-MAX_PENALTY,
        max_value=MAX_PENALTY,
        required=False,
        allow_null=True,
        help_text="openai, openrouter, google (0, the default, anywhere)",
    )
    logprobs = serializers.BooleanField(
        required=False,
        allow_null=True,
        help_text="true: each choice has logprobs.content, the log probability of each token "
        "of its answer as the vendor reported it, streamed with its text (openai, "
        "openrouter, google; false, the default, anywhere)",
    )
    top_logprobs = serializers.IntegerField(
        min_value=0,
        max_value=MAX_TOP_LOGPROBS,
        required=False,
        allow_null=True,
        help_text=f"0 to {MAX_TOP_LOGPROBS}, with logprobs=true (else 400): that many "
        "likeliest alternatives at each token (openai, openrouter, google)",
    )


class OpenAIStreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(
        default=False, help_text="a last chunk with empty choices carries the usage"
    )


class OpenAIChatCompletionRequestSerializer(OpenAISamplingSerializer):
    model = serializers.CharField(
        max_length=300, help_text="provider/model, as GET /v1/models lists them"
    )
    messages = serializers.ListField(
        child=serializers.DictField(),
        min_length=1,
        max_length=MAX_CLIENT_MESSAGES + 1,
        help_text=(
            "system/developer, user, assistant (with tool_calls) and tool turns; the last "
            "one is the user's question, or the tool results that answer the model's calls "
            "after it. Content is a string or text and image_url parts (data URLs only)."
        ),
    )
    stream = serializers.BooleanField(default=False, allow_null=True)
    stream_options = OpenAIStreamOptionsSerializer(required=False, allow_null=True)
    temperature = serializers.FloatField(
        min_value=MIN_TEMPERATURE, max_value=MAX_TEMPERATURE, required=False, allow_null=True
    )
    max_tokens = serializers.IntegerField(
        min_value=MIN_ANSWER_TOKENS,
        max_value=MAX_ANSWER_TOKENS,
        required=False,
        allow_null=True,
    )
    max_completion_tokens = serializers.IntegerField(
        min_value=MIN_ANSWER_TOKENS,
        max_value=MAX_ANSWER_TOKENS,
        required=False,
        allow_null=True,
    )
    user = serializers.CharField(
        max_length=MAX_ID_LENGTH,
        required=False,
        allow_null=True,
        help_text="the end user's user_id",
    )
    metadata = serializers.DictField(
        required=False,
        allow_null=True,
        help_text='session_id (or the X-Session-ID header), use_memory ("true": add the '
        'platform\'s memory of this user), memory_scope (with use_memory: "user", the '
        'default, recalls past questions of all its sessions; "session" of this one only)',
    )
    web_search_options = serializers.DictField(
        required=False, allow_null=True, help_text="present: the answer searches the web"
    )
    n = serializers.IntegerField(
        min_value=1,
        max_value=MAX_CHOICES,
        required=False,
        allow_null=True,
        help_text=f"1 to {MAX_CHOICES} choices (every provider): n questions of the same "
        "messages, started together, each stored, billed and admitted against the key's "
        "limits as one question; chatcmpl-<the first one's id>, usage summed",
    )
    response_format = serializers.DictField(
        required=False,
        allow_null=True,
        help_text='{"type": "json_object"}, or {"type": "json_schema", "json_schema": {name, '
        "schema, strict}}: the answer is that JSON (strict: validated against the schema). "
        "Not with the local model (400 response_format_unsupported).",
    )
    tools = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        allow_null=True,
        help_text='[{"type": "function", "function": {name, description, parameters (JSON '
        "Schema), strict}}]: functions the model may call; translated to each vendor's own "
        "tools. Not with the local model (400 tools_unsupported).",
    )
    tool_choice = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text='"auto", "none", "required" or {"type": "function", "function": {"name"}}',
    )
    parallel_tool_calls = serializers.BooleanField(
        required=False, allow_null=True, help_text="false: at most one call per answer"
    )
    functions = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        allow_null=True,
        help_text="deprecated form of tools: [{name, description, parameters}]",
    )
    function_call = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text='deprecated form of tool_choice: "auto", "none" or {"name"}',
    )

    def validate(self, attrs: dict) -> dict:
        refuse_unhonoured(self, unhonoured=_UNHONOURED, defaults=_DEFAULTS)
        check_metadata(attrs)
        return attrs


def refuse_unhonoured(
    serializer: serializers.Serializer,
    *,
    unhonoured: set[str],
    defaults: dict[str, tuple[object, ...]],
) -> None:
    """No field a client sends is silently dropped: one this API does not honour is
    refused unless it is absent, null, empty or OpenAI's own default (what SDKs send
    unasked); so is any field OpenAI does not define. Raises ValidationError."""
    for name, value in serializer.initial_data.items():
        if name in serializer.fields:
            continue
        if name in unhonoured and (
            value is None or value == [] or value == {} or value in defaults.get(name, ())
        ):
            continue
        raise serializers.ValidationError(
            {name: f"{name} is not supported by this API (send it unset)."}
        )


def check_metadata(attrs: dict) -> None:
    """``metadata.session_id``, ``metadata.use_memory`` and ``metadata.memory_scope``,
    as /v1 reads them."""
    metadata = attrs.get("metadata") or {}
    if "session_id" in metadata and not isinstance(metadata["session_id"], str):
        raise serializers.ValidationError({"metadata": "metadata.session_id must be a string."})
    if metadata.get("use_memory", "false") not in (True, False, "true", "false"):
        raise serializers.ValidationError(
            {"metadata": 'metadata.use_memory must be "true" or "false".'}
        )
    if metadata.get("memory_scope", "user") not in MEMORY_SCOPES:
        raise serializers.ValidationError(
            {"metadata": 'metadata.memory_scope must be "user" or "session".'}
        )


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "maxItems": MAX_EMBEDDING_INPUTS,
            },
        ]
    }
)
class EmbeddingInputField(serializers.JSONField):
    """A string or a list of strings (OpenAI also takes token arrays; not here)."""


def _token_arrays(value: object) -> bool:
    """Whether ``value`` is OpenAI's token input: a list of ints, or of lists of ints."""
    if not isinstance(value, list) or not value:
        return False
    if all(isinstance(item, int) for item in value):
        return True
    return all(
        isinstance(item, list) and all(isinstance(token, int) for token in item) for item in value
    )


class OpenAIEmbeddingRequestSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=300, help_text="the embedder's model (GET /v1/models)")
    input = EmbeddingInputField(help_text="a string or a list of strings")
    encoding_format = serializers.ChoiceField(
        choices=["float", "base64"], default="float", allow_null=True
    )
    dimensions = serializers.IntegerField(
        min_value=1, required=False, allow_null=True, help_text="must be the model's own"
    )
    user = serializers.CharField(max_length=MAX_ID_LENGTH, required=False, allow_null=True)

    def validate_input(self, value: object) -> list[str]:
        if _token_arrays(value):
            # Decoding tokens needs the client's tokenizer, which is not shipped here.
            raise serializers.ValidationError(
                "Token arrays are not supported: send the text as a string or a list of "
                "strings. LangChain's OpenAIEmbeddings sends token arrays unless it is "
                "created with check_embedding_ctx_length=False."
            )
        texts = [value] if isinstance(value, str) else value
        if (
            not isinstance(texts, list)
            or not texts
            or len(texts) > MAX_EMBEDDING_INPUTS
            or not all(isinstance(text, str) for text in texts)
        ):
            raise serializers.ValidationError(
                f"Send a string or a list of 1 to {MAX_EMBEDDING_INPUTS} strings (token "
                "arrays are not supported)."
            )
        return texts


# ----- answers (documentation) -----


class OpenAIModelSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="provider/model")
    object = serializers.CharField(help_text="model")
    created = serializers.IntegerField()
    owned_by = serializers.CharField(help_text="the provider")


class OpenAIModelListSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="list")
    data = OpenAIModelSerializer(many=True)


class OpenAIUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    prompt_tokens_details = serializers.DictField(required=False)
    completion_tokens_details = serializers.DictField(required=False)


class OpenAIChatCompletionSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="chatcmpl-<query id> (GET /api/v1/query/{id})")
    object = serializers.CharField(help_text="chat.completion")
    created = serializers.IntegerField()
    model = serializers.CharField()
    choices = serializers.ListField(child=serializers.DictField())
    usage = OpenAIUsageSerializer()
    system_fingerprint = serializers.CharField(allow_null=True)


class OpenAIResponseSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="resp_<query id> (GET /api/v1/query/{id})")
    object = serializers.CharField(help_text="response")
    created_at = serializers.IntegerField()
    status = serializers.CharField(
        help_text="completed, incomplete (max_output_tokens), in_progress, cancelled or failed "
        "(GET /v1/responses/{id} of a run not answered)"
    )
    model = serializers.CharField()
    output = serializers.ListField(
        child=serializers.DictField(),
        help_text='[{"type": "message", "role": "assistant", "content": [{"type": '
        '"output_text", "text"}]}]',
    )
    usage = serializers.DictField(
        allow_null=True, help_text="input_tokens, output_tokens, total_tokens (null in_progress)"
    )


class OpenAIEmbeddingSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="embedding")
    index = serializers.IntegerField()
    embedding = serializers.JSONField(help_text="floats, or base64 of little-endian float32")


class OpenAIEmbeddingListSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="list")
    data = OpenAIEmbeddingSerializer(many=True)
    model = serializers.CharField()
    usage = serializers.DictField()


class OpenAIErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField(help_text="invalid_request_error, authentication_error, ...")
    param = serializers.CharField(allow_null=True)
    code = serializers.CharField(allow_null=True)


class OpenAIErrorSerializer(serializers.Serializer):
    """``{"error": {"message", "type", "param", "code"}}``, as OpenAI answers errors."""

    error = OpenAIErrorDetailSerializer()
