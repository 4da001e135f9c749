"""The URL map: the public API under api/v1/, /v1, the docs, admin and the chat UI."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.decorators.csp import csp_override
from drf_spectacular.views import (
    SpectacularJSONAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from llmplatform.core.admin_lockouts import lockouts_view
from llmplatform.core.metrics_http import metrics_view
from llmplatform.core.security_headers import docs_csp

api_v1 = [
    path("", include("chat.status_urls")),
    path("", include("queries.urls")),
    path("", include("sessions.urls")),
    path("", include("analytics.urls")),
    path("", include("files.urls")),
    path("", include("search.urls")),
    path("", include("products.urls")),
    path("", include("evaluations.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    # OpenAI-compatible: the openai SDKs' base_url is <site>/v1.
    path("v1/", include("openai_compat.urls")),
    # Prometheus scrape (bearer METRICS_TOKEN; 404 while unset).
    path("metrics", metrics_view, name="metrics"),
    # JSON, as the name says (the plain view answers YAML unless asked otherwise).
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    # The split view loads Swagger UI's start-up script from a URL: no inline script.
    path(
        "docs",
        csp_override(docs_csp())(SpectacularSwaggerSplitView.as_view(url_name="openapi")),
        name="docs",
    ),
    path(
        "redoc",
        csp_override(docs_csp())(SpectacularRedocView.as_view(url_name="openapi")),
        name="redoc",
    ),
    # Superusers unlock sign-in lock-outs here (llmplatform.core.login_guard).
    path(
        "admin/security/lockouts/",
        admin.site.admin_view(lockouts_view),
        name="admin-lockouts",
    ),
    path("admin/", admin.site.urls),
    # The chat page at "", its sign-in and its JSON API under chat/api/.
    path("", include("chat.urls")),
]
