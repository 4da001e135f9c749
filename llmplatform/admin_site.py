"""The operator console: Django admin with the platform's name and dashboard link."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.admin import AdminSite
from django.http import HttpRequest
from django.urls import path


class OperatorAdminSite(AdminSite):
    site_header = f"{settings.APP_NAME} operator console"
    site_title = settings.APP_NAME
    index_title = "Operations"

    def get_urls(self):
        from llmplatform.dashboard import dashboard_view

        return [
            path("dashboard/", self.admin_view(dashboard_view), name="dashboard"),
            *super().get_urls(),
        ]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Data written by the API: operators look, never type over it."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
