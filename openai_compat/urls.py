from __future__ import annotations

from django.urls import path

from openai_compat.views import ChatCompletionsView, EmbeddingsView, ModelsView

urlpatterns = [
    path("models", ModelsView.as_view(), name="openai-models"),
    path("chat/completions", ChatCompletionsView.as_view(), name="openai-chat-completions"),
    path("embeddings", EmbeddingsView.as_view(), name="openai-embeddings"),
]
