from __future__ import annotations

from django.apps import AppConfig


class OpenAICompatConfig(AppConfig):
    """The OpenAI-compatible API under /v1: an edge over the query run (no models)."""

    name = "openai_compat"
    verbose_name = "OpenAI-compatible API"
