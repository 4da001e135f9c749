"""The browser chat UI: the page at ``/`` and its login/logout views.

The page itself is static HTML plus the ES modules under ``static/chat/``: questions and
answers go through the ``/ws/chat/`` websocket, conversations, feedback and uploads
through the page's JSON endpoints (``chat.api``), all authenticated by the Django session
these views establish.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView, LogoutView
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse, reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from agents.providers.catalogue import chat_models
from agents.providers.registry import available_providers, default_model_for, default_provider
from chat.selectors import shared_transcript
from llmplatform.core.errors import NotFound
from llmplatform.core.login_guard import LockoutAuthenticationForm
from queries.serializers import MAX_ATTACHMENTS, MAX_DOCUMENTS, MAX_QUERY_CHARS

# Shown next to the provider wherever it can be picked: its answers are not real ones.
DEMO_PROVIDERS = {"local": "demo-quality model: small and fast, answers are often wrong"}


def _model_groups() -> list[dict]:
    groups: dict[str, list[str]] = {}
    for served in chat_models():
        groups.setdefault(served.provider, []).append(served.model)
    return [{"provider": provider, "models": models} for provider, models in groups.items()]


@never_cache
@login_required(login_url=reverse_lazy("login"))
def chat_page(request: HttpRequest) -> HttpResponse:
    providers = available_providers()
    selected = default_provider()
    provider_rows = [
        {
            "name": name,
            "default_model": default_model_for(name),
            "note": DEMO_PROVIDERS.get(name, ""),
            "selected": name == selected,
        }
        for name in providers
    ]
    config = {
        "userId": request.user.get_username(),
        "wsPath": "/ws/chat/",
        "defaultModels": {row["name"]: row["default_model"] for row in provider_rows},
        "notes": {row["name"]: row["note"] for row in provider_rows if row["note"]},
        "apiBase": reverse("chat-conversations").removesuffix("conversations"),
        "maxAttachments": MAX_ATTACHMENTS,
        "maxDocuments": MAX_DOCUMENTS,
        "maxFileSize": settings.MAX_FILE_SIZE,
        # A question typed while its documents are read waits this long for them: as long
        # as reading one may take, and a minute more for its turn in the queue.
        "documentWaitSeconds": int(settings.DOCUMENT_INGEST_TIMEOUT_S) + 60,
        "maxQueryChars": MAX_QUERY_CHARS,
    }
    return render(
        request,
        "chat/index.html",
        {
            "providers": provider_rows,
            "default_provider": selected or "",
            "default_model": default_model_for(selected) if selected else "",
            "default_note": DEMO_PROVIDERS.get(selected or "", ""),
            "chat_config": config,
            "max_query_chars": MAX_QUERY_CHARS,
            "model_groups": _model_groups(),
        },
    )


class ChatLoginView(LoginView):
    template_name = "chat/login.html"
    authentication_form = LockoutAuthenticationForm
    redirect_authenticated_user = True
    next_page = reverse_lazy("chat")


class ChatLogoutView(LogoutView):
    next_page = reverse_lazy("login")


@never_cache
@require_safe
def shared_conversation(request: HttpRequest, token: str) -> HttpResponse:
    """A conversation's read-only page for whoever has its link: no sign-in, its questions
    and answers only (no account, model, usage or other conversation), kept out of search
    engines. An unknown or revoked link is a 404."""
    try:
        transcript = shared_transcript(token=token)
    except NotFound:
        raise Http404("No such shared conversation.") from None
    response = render(
        request,
        "chat/shared.html",
        {
            "title": transcript.title or "Shared conversation",
            "turns": [
                {"question": query.query, "answer": query.response}
                for query in transcript.queries
                if query.response
            ],
        },
    )
    response["X-Robots-Tag"] = "noindex, nofollow"
    # The token is in the URL: links followed from the page must not carry it along.
    response["Referrer-Policy"] = "no-referrer"
    return response
