"""The operator console: Django admin with the platform's name and dashboard link."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import admin
from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponse
from django.urls import path

from llmplatform.core.login_guard import LockoutAdminAuthenticationForm


class OperatorAdminSite(AdminSite):
    site_header = f"{settings.APP_NAME} operator console"
    site_title = settings.APP_NAME
    index_title = "Operations"
    # Wrong passwords lock a user name or address out; see llmplatform.core.login_guard.
    login_form = LockoutAdminAuthenticationForm

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[tuple[str, Callable[..., HttpResponse], str]] = []

    def register_page(self, route: str, view: Callable[..., HttpResponse], *, name: str) -> None:
        """Add an operator page (an app's admin module adds its own, e.g. the dashboard)."""
        self._pages.append((route, view, name))

    def get_urls(self):
        return [
            *(path(route, self.admin_view(view), name=name) for route, view, name in self._pages),
            *super().get_urls(),
        ]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Data written by the API: operators look, never type over it."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
