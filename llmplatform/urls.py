from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.decorators.csp import csp_override
from drf_spectacular.views import (
    SpectacularJSONAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from llmplatform.chat_ui import ChatLoginView, ChatLogoutView, chat_page
from llmplatform.core.admin_lockouts import lockouts_view
from llmplatform.core.metrics_http import metrics_view
from llmplatform.core.security_headers import docs_csp
from llmplatform.status_views import HealthView, StatusView, UsageView

api_v1 = [
    path("health", HealthView.as_view(), name="health"),
    path("status", StatusView.as_view(), name="status"),
    path("usage", UsageView.as_view(), name="usage"),
    path("", include("queries.urls")),
    path("", include("sessions.urls")),
    path("", include("analytics.urls")),
    # Before files.urls: files/upload (which queues ingestion) and search live there.
    path("", include("documents.urls")),
    path("", include("files.urls")),
    path("", include("products.urls")),
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
    path("", chat_page, name="chat"),
    path("chat/api/", include("llmplatform.chat_api.urls")),
    path("login/", ChatLoginView.as_view(), name="login"),
    path("logout/", ChatLogoutView.as_view(), name="logout"),
]
