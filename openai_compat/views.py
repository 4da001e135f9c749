"""The /v1 edges: parse the OpenAI request, call the one entry, render OpenAI's answer.

Authenticated like the rest of the API (``Authorization: Bearer <platform API key>``);
every error is OpenAI's error shape (``openai_compat.errors``).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.views import APIView

from agents.providers.embeddings import get_embedder
from agents.providers.provider_errors import ProviderError
from files.charges import Payer
from llmplatform.core.errors import ApplicationError
from llmplatform.core.json_body import DepthLimitedJSONParser
from openai_compat.catalog import (
    chat_model_resolve,
    chat_models,
    configured_aliases,
    embedding_model_ids,
    embedding_owner,
    model_aliases,
)
from openai_compat.chat import (
    DEFAULT_USER_ID,
    chat_call_from_request,
    completion_body,
    completion_chunks,
    first_problem,
)
from openai_compat.chat_choices import chat_queries_start, chat_queries_wait, first_failed
from openai_compat.chat_messages import invalid_request
from openai_compat.embeddings import embeddings_create
from openai_compat.errors import openai_error_response, openai_exception_response
from openai_compat.responses import response_body, response_events, stored_response_body
from openai_compat.responses_request import (
    OpenAIResponseRequestSerializer,
    ResponseRetrieveParamsSerializer,
    responses_call_from_request,
)
from openai_compat.schema import OpenAIAutoSchema
from openai_compat.serializers import (
    MAX_CHOICES,
    OpenAIChatCompletionRequestSerializer,
    OpenAIChatCompletionSerializer,
    OpenAIEmbeddingListSerializer,
    OpenAIEmbeddingRequestSerializer,
    OpenAIModelListSerializer,
    OpenAIModelSerializer,
    OpenAIResponseSerializer,
)
from openai_compat.stored_responses import response_query_get
from queries.models import Query
from queries.outcome import error_of
from queries.start import query_start
from queries.streams import query_wait

# Models have no creation date here; OpenAI's field is required, so: a fixed, honest 0.
_NO_DATE = 0


class _AnyAccept(DefaultContentNegotiation):
    """OpenAI's API does not negotiate: streaming clients send ``Accept: text/event-stream``
    and must get the stream (and JSON errors), not a 406."""

    def select_renderer(
        self, request: Request, renderers: list, format_suffix: str | None = None
    ) -> tuple:
        return renderers[0], renderers[0].media_type


class _OpenAIView(APIView):
    schema = OpenAIAutoSchema()
    content_negotiation_class = _AnyAccept
    # OpenAI's API takes JSON only (the rest of the API also takes multipart uploads).
    parser_classes = [DepthLimitedJSONParser]

    def handle_exception(self, exc: Exception) -> HttpResponse:
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            # What DRF's own handle_exception does before rendering: a 401 names the scheme.
            exc.auth_header = self.get_authenticate_header(self.request)  # type: ignore[attr-defined]
        return openai_exception_response(exc, self.request)


def _embedding_model() -> str | None:
    try:
        return get_embedder().model
    except ProviderError:  # EMBEDDING_PROVIDER=openai without a key: chat still works
        return None


def _embedding_entry(model: str) -> dict[str, object]:
    return {
        "id": embedding_model_ids(model)[1],
        "object": "model",
        "created": _NO_DATE,
        "owned_by": embedding_owner(model),
    }


def _served_models() -> list[dict[str, object]]:
    """Chat models as provider/model, the operator's aliases (MODEL_ALIASES), then the
    embedding model, as OpenAI lists models."""
    data: list[dict[str, object]] = [
        {"id": m.id, "object": "model", "created": _NO_DATE, "owned_by": m.provider}
        for m in chat_models()
    ]
    data += [
        {"id": alias, "object": "model", "created": _NO_DATE, "owned_by": m.provider}
        for alias, m in model_aliases().items()
    ]
    embedder_model = _embedding_model()
    if embedder_model is not None:
        data.append(_embedding_entry(embedder_model))
        data += [
            {**_embedding_entry(embedder_model), "id": alias}
            for alias, target in configured_aliases().items()
            if target in embedding_model_ids(embedder_model)
        ]
    return data


class ModelsView(_OpenAIView):
    @extend_schema(
        summary="The models this deployment serves (OpenAI-compatible)",
        description=(
            "Chat models as provider/model, the aliases MODEL_ALIASES configures, then the "
            "embedding model."
        ),
        responses={200: OpenAIModelListSerializer},
    )
    def get(self, request: Request) -> JsonResponse:
        return JsonResponse({"object": "list", "data": _served_models()})


class ModelView(_OpenAIView):
    @extend_schema(
        operation_id="v1_model_retrieve",
        summary="One model this deployment serves (OpenAI-compatible)",
        description=(
            "The id is provider/model or an alias, as GET /v1/models lists it (it has a "
            "slash), or a bare model name (gpt-4o-mini), answered as the provider/model it "
            "resolves to."
        ),
        responses={200: OpenAIModelSerializer},
    )
    def get(self, request: Request, model_id: str) -> JsonResponse:
        for model in _served_models():
            if model["id"] == model_id:
                return JsonResponse(model)
        # Another name of the embedding model, or a bare chat model name: what it resolves to.
        embedder_model = _embedding_model()
        if embedder_model is not None and model_id in embedding_model_ids(embedder_model):
            return JsonResponse(_embedding_entry(embedder_model))
        resolved = chat_model_resolve(model_id)  # 404 model_not_found, 400 ambiguous_model
        return JsonResponse(
            {
                "id": resolved.id,
                "object": "model",
                "created": _NO_DATE,
                "owned_by": resolved.provider,
            }
        )


class UnknownPathView(_OpenAIView):
    """Every other /v1 path, for any method: OpenAI's JSON 404 (not Django's HTML page),
    after the same authentication as every /v1 route."""

    @extend_schema(exclude=True)
    def get(self, request: Request, path: str) -> HttpResponse:
        raise ApplicationError(
            f"Invalid URL ({request.method} {request.path}): this API serves /v1/models, "
            "/v1/models/{id}, /v1/chat/completions, /v1/responses, /v1/responses/{id} and "
            "/v1/embeddings.",
            code="not_found",
            status=404,
        )

    post = put = patch = delete = get


def _event_stream(chunks: Any) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


class ChatCompletionsView(_OpenAIView):
    @extend_schema(
        summary="Answer a conversation through the agent pipeline (OpenAI-compatible)",
        description=(
            "Runs like POST /api/v1/query/ and is recorded the same way (history, usage and "
            "cost, experiments, analytics); the response id is chatcmpl-<query id>. "
            "`messages` are passed to the model as given; the last one must be the user's. "
            "`user` is the end user (default openai-api); the X-Session-ID header or "
            "metadata.session_id names the session (else each call gets a new one, returned "
            'in X-Session-ID). metadata.use_memory="true" adds the platform\'s memory; '
            "web_search_options searches the web; image_url parts must be data URLs. "
            "With stream=true: text/event-stream of chat.completion.chunk frames ending "
            "`data: [DONE]` (stream_options.include_usage adds the usage chunk). "
            "logprobs (and top_logprobs) give each choice logprobs.content, per token as the "
            "vendor reported it (openai, openrouter, google; else 400 unsupported_parameter). "
            f"n > 1 (at most {MAX_CHOICES}) answers with n choices, each a question of its "
            "own: started together, stored, billed and admitted as one each (a refused one "
            "stops the others and is the answer); streamed, their chunks are merged, each "
            "with its index."
        ),
        request=OpenAIChatCompletionRequestSerializer,
        responses={
            200: OpenAIChatCompletionSerializer,
            (200, "text/event-stream"): OpenApiTypes.STR,
        },
    )
    def post(self, request: Request) -> HttpResponse:
        call = chat_call_from_request(
            request.data, session_header=request.headers.get("X-Session-ID")
        )
        # The key's own limits and budgets apply here as on /api/v1 (429 with Retry-After),
        # to each of the n choices as to a question.
        queries = chat_queries_start(
            owner=request.user, params=call.params, n=call.n, api_key=request.auth
        )
        if call.stream:
            response: HttpResponse = _event_stream(
                completion_chunks(
                    queries,
                    model_id=call.model_id,
                    include_usage=call.include_usage,
                    api_key=request.auth,
                    legacy_functions=call.legacy_functions,
                )
            )
        else:
            queries = chat_queries_wait(queries=queries)
            failed = first_failed(queries)
            if failed is not None:
                return openai_error_response(error_of(failed.error))
            response = JsonResponse(
                completion_body(
                    queries, model_id=call.model_id, legacy_functions=call.legacy_functions
                )
            )
        response["X-Session-ID"] = call.params.session_id
        return response


class ResponsesView(_OpenAIView):
    @extend_schema(
        summary="Answer through the agent pipeline (OpenAI Responses API, text)",
        description=(
            "Runs like POST /v1/chat/completions and is recorded the same way; the id is "
            "resp_<query id>. `input` is a string or message items (input_text, "
            "output_text and input_image parts, images as data URLs), `instructions` the "
            "system prompt, `text.format` json_object or json_schema the answer's JSON. "
            "With stream=true: text/event-stream of the typed events response.created, "
            "response.in_progress, response.output_item.added, response.content_part.added, "
            "response.output_text.delta (one per token), response.output_text.done, "
            "response.content_part.done, response.output_item.done and response.completed "
            "(with usage; response.incomplete when max_output_tokens cut it, "
            "response.failed with the error when the run failed). Function tools answer "
            "with function_call items; function_call_output input items answer them. "
            "previous_response_id continues a completed response of the same owner: its "
            "conversation (not its instructions) goes before input, in its session. "
            "Built-in tools and store=false are refused (400), not ignored."
        ),
        request=OpenAIResponseRequestSerializer,
        responses={200: OpenAIResponseSerializer, (200, "text/event-stream"): OpenApiTypes.STR},
    )
    def post(self, request: Request) -> HttpResponse:
        call = responses_call_from_request(
            request.data, owner=request.user, session_header=request.headers.get("X-Session-ID")
        )
        # The key's own limits and budgets apply here as on /api/v1 (429 with Retry-After).
        query = query_start(owner=request.user, params=call.chat.params, api_key=request.auth)
        if call.chat.stream:
            response: HttpResponse = _event_stream(
                response_events(query, call.echo, api_key=request.auth)
            )
        else:
            query = query_wait(query=query)
            if query.status == Query.Status.FAILED:
                return openai_error_response(error_of(query.error))
            response = JsonResponse(response_body(query, call.echo))
        response["X-Session-ID"] = call.chat.params.session_id
        return response


class ResponseView(_OpenAIView):
    @extend_schema(
        operation_id="v1_response_retrieve",
        summary="A response, as POST /v1/responses answered it (OpenAI Responses API)",
        description=(
            "The id is resp_<query id>, of this key's owner (another owner's is 404). The "
            "same response object, rebuilt from the stored run: status in_progress (no "
            "output yet), completed or incomplete, cancelled (what was said before the "
            "stop) or failed (with the error). stream=true: its typed events from the "
            "start, following the run while it is under way."
        ),
        parameters=[ResponseRetrieveParamsSerializer],
        responses={200: OpenAIResponseSerializer, (200, "text/event-stream"): OpenApiTypes.STR},
    )
    def get(self, request: Request, response_id: str) -> HttpResponse:
        params = ResponseRetrieveParamsSerializer(data=request.query_params.dict())
        if not params.is_valid():
            field, problem = first_problem(params.errors)
            raise invalid_request(f"{field}: {problem}", field)
        query = response_query_get(owner=request.user, response_id=response_id)
        echo = query.request["client_request"]
        if params.validated_data["stream"]:
            return _event_stream(response_events(query, echo, api_key=request.auth, stored=query))
        return JsonResponse(stored_response_body(query))


class EmbeddingsView(_OpenAIView):
    @extend_schema(
        summary="Embed texts with the platform's embedder (OpenAI-compatible)",
        description=(
            "Counted against the key's limits like a question: one request per minute, and "
            "the input's tokens (about 4 characters each; usage.prompt_tokens) against its "
            "token budget, priced against its USD budget where the embedder has a price. "
            "Over a limit: 429 rate_limited or budget_exceeded with Retry-After."
        ),
        request=OpenAIEmbeddingRequestSerializer,
        responses={200: OpenAIEmbeddingListSerializer},
    )
    def post(self, request: Request) -> JsonResponse:
        serializer = OpenAIEmbeddingRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # On the server's event loop (a sync view under ASGI), where the embedder's SDK
        # client and its connection pool are kept between requests.
        body = async_to_sync(embeddings_create)(
            # The key's own limits and budgets apply as to a question (429 with Retry-After).
            payer=Payer(api_key=request.auth, user_id=data.get("user") or DEFAULT_USER_ID),
            texts=data["input"],
            model=data["model"],
            encoding_format=data.get("encoding_format") or "float",
            dimensions=data.get("dimensions"),
        )
        return JsonResponse(body)
