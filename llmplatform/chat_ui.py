"""The browser chat UI: the page at ``/`` and its login/logout views.

The page itself is static HTML plus ``static/chat/chat.js``; everything it does after
loading goes through the ``/ws/chat/`` websocket, authenticated by the Django session
these views establish.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView, LogoutView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache

from agents.providers.registry import DEFAULT_MODELS, available_providers
from queries.serializers import MAX_ATTACHMENTS, MAX_QUERY_CHARS

# Shown next to the provider wherever it can be picked: its answers are not real ones.
DEMO_PROVIDERS = {"local": "demo-quality model: small and fast, answers are often wrong"}


def _default_model(provider: str) -> str:
    if provider == settings.DEFAULT_MODEL_PROVIDER and settings.DEFAULT_MODEL_NAME:
        return settings.DEFAULT_MODEL_NAME
    return DEFAULT_MODELS.get(provider, "")


@never_cache
@login_required(login_url=reverse_lazy("login"))
def chat_page(request: HttpRequest) -> HttpResponse:
    providers = available_providers()
    default_provider = (
        settings.DEFAULT_MODEL_PROVIDER
        if settings.DEFAULT_MODEL_PROVIDER in providers
        else (providers[0] if providers else "")
    )
    provider_rows = [
        {
            "name": name,
            "default_model": _default_model(name),
            "note": DEMO_PROVIDERS.get(name, ""),
            "selected": name == default_provider,
        }
        for name in providers
    ]
    config = {
        "userId": request.user.get_username(),
        "wsPath": "/ws/chat/",
        "defaultModels": {row["name"]: row["default_model"] for row in provider_rows},
        "notes": {row["name"]: row["note"] for row in provider_rows if row["note"]},
        "maxAttachments": MAX_ATTACHMENTS,
        "maxFileSize": settings.MAX_FILE_SIZE,
        "maxQueryChars": MAX_QUERY_CHARS,
    }
    return render(
        request,
        "chat/index.html",
        {
            "providers": provider_rows,
            "default_provider": default_provider,
            "default_model": _default_model(default_provider) if default_provider else "",
            "default_note": DEMO_PROVIDERS.get(default_provider, ""),
            "chat_config": config,
            "max_query_chars": MAX_QUERY_CHARS,
        },
    )


class ChatLoginView(LoginView):
    template_name = "chat/login.html"
    redirect_authenticated_user = True
    next_page = reverse_lazy("chat")


class ChatLogoutView(LogoutView):
    next_page = reverse_lazy("login")
