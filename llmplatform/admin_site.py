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

    def register_action(self, model: type, action: Callable[..., HttpResponse | None]) -> None:
        """Add an action to the list of a model another app's admin owns (evaluations adds
        "add to a dataset" to the query list), as ``register_page`` adds pages: the owner's
        ModelAdmin stays the one registered, and the action shows only on that list. The
        owner's admin must be loaded first (its app earlier in INSTALLED_APPS)."""
        model_admin = self.get_model_admin(model)
        model_admin.actions = [*(model_admin.actions or []), action]

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
