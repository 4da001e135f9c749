from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from llmplatform.chat_ui import ChatLoginView, ChatLogoutView, chat_page
from llmplatform.status_views import HealthView, StatusView

api_v1 = [
    path("health", HealthView.as_view(), name="health"),
    path("status", StatusView.as_view(), name="status"),
    path("", include("queries.urls")),
    path("", include("sessions.urls")),
    path("", include("analytics.urls")),
    path("", include("files.urls")),
    path("", include("products.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("openapi.json", SpectacularAPIView.as_view(), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="openapi"), name="redoc"),
    path("admin/", admin.site.urls),
    path("", chat_page, name="chat"),
    path("login/", ChatLoginView.as_view(), name="login"),
    path("logout/", ChatLogoutView.as_view(), name="logout"),
]
