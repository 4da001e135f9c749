"""``/api/v1/health``, ``status`` and ``usage`` (mounted under ``api/v1/`` by config.urls)."""

from __future__ import annotations

from django.urls import path

from chat.status_views import HealthView, StatusView, UsageView

urlpatterns = [
    path("health", HealthView.as_view(), name="health"),
    path("status", StatusView.as_view(), name="status"),
    path("usage", UsageView.as_view(), name="usage"),
]
