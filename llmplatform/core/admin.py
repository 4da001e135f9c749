"""Operator console: API keys (creating one shows the raw key once; revoking is an
action) and the limits of accounts that ask without a key (the browser chat)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model

from llmplatform.core.models import AccountLimits, ApiKey
from llmplatform.core.quotas import quota_windows
from llmplatform.core.services import (
    KEY_LIMIT_FIELDS,
    api_key_create,
    api_key_revoke,
    api_key_set_limits,
)


class ApiKeyCreateForm(forms.ModelForm):
    owner = forms.ModelChoiceField(queryset=get_user_model().objects.order_by("username"))

    class Meta:
        model = ApiKey
        fields = ("owner", "name", *KEY_LIMIT_FIELDS)


def _usage_line(windows) -> str:
    parts = []
    for window in windows:
        label = {
            "requests_per_minute": "questions this minute",
            "tokens_per_day": "tokens today",
            "usd_per_month": "USD this month",
        }[window.name]
        used = f"{window.used:.2f}" if window.name == "usd_per_month" else f"{window.used}"
        limit = "no limit" if window.limit is None else f"of {window.limit}"
        parts.append(f"{used} {label} ({limit})")
    return "; ".join(parts)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "prefix",
        "owner",
        "usage",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("name", "prefix", "owner__username")
    ordering = ("-created_at",)
    actions = ("revoke_keys",)

    @admin.display(description="Usage against budget (UTC windows)")
    def usage(self, api_key: ApiKey) -> str:
        return _usage_line(quota_windows(api_key=api_key))

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        limits = (
            "Limits and budgets (blank: the DEFAULT_KEY_* / DEFAULT_USER_* setting)",
            {"fields": KEY_LIMIT_FIELDS},
        )
        if obj is None:
            return ((None, {"fields": ("owner", "name")}), limits)
        key = ("name", "prefix", "owner", "created_at", "last_used_at", "revoked_at")
        return ((None, {"fields": key}), limits, ("Usage now", {"fields": ("usage",)}))

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("prefix", "owner", "created_at", "last_used_at", "revoked_at", "usage")

    def save_model(self, request, obj: ApiKey, form, change) -> None:
        limits = {field: form.cleaned_data.get(field) for field in KEY_LIMIT_FIELDS}
        if change:
            obj.save(update_fields=["name"])
            api_key_set_limits(api_key=obj, limits=limits)
            return
        api_key, raw_key = api_key_create(
            owner=form.cleaned_data["owner"], name=form.cleaned_data["name"], limits=limits
        )
        # The admin redirects to the object it thinks it saved.
        obj.pk = api_key.pk
        self.message_user(
            request,
            f"API key created. Copy it now; it is not stored and will not be shown again: "
            f"{raw_key}",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request, queryset) -> None:
        for api_key in queryset:
            api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


@admin.register(AccountLimits)
class AccountLimitsAdmin(admin.ModelAdmin):
    """Limits of a user's own questions from the chat page (no API key); a user without
    a row, or a blank field, gets the DEFAULT_ACCOUNT_* setting."""

    list_display = ("user", "requests_per_minute", "tokens_per_day", "usd_per_month", "usage")
    search_fields = ("user__username",)
    fieldsets = (
        (None, {"fields": ("user",)}),
        (
            "Limits and budgets (blank: the DEFAULT_ACCOUNT_* setting)",
            {"fields": ("requests_per_minute", "tokens_per_day", "usd_per_month", "storage_mb")},
        ),
        ("Usage now", {"fields": ("usage",)}),
    )
    readonly_fields = ("usage",)

    @admin.display(description="Usage against budget (UTC windows)")
    def usage(self, limits: AccountLimits) -> str:
        if limits.pk is None:
            return "-"
        return _usage_line(quota_windows(account=limits.user))
