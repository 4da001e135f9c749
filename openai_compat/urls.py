from __future__ import annotations

from django.urls import path, re_path

from openai_compat.views import (
    ChatCompletionsView,
    EmbeddingsView,
    ModelsView,
    ModelView,
    ResponsesView,
    ResponseView,
    UnknownPathView,
)

urlpatterns = [
    path("models", ModelsView.as_view(), name="openai-models"),
    # Model ids are provider/model: the id has a slash.
    path("models/<path:model_id>", ModelView.as_view(), name="openai-model"),
    path("chat/completions", ChatCompletionsView.as_view(), name="openai-chat-completions"),
    path("responses", ResponsesView.as_view(), name="openai-responses"),
    path("responses/<str:response_id>", ResponseView.as_view(), name="openai-response"),
    path("embeddings", EmbeddingsView.as_view(), name="openai-embeddings"),
    # Last: whatever else is asked of /v1 is OpenAI's JSON 404, never an HTML page.
    re_path(r"^(?P<path>.*)$", UnknownPathView.as_view(), name="openai-unknown"),
]
