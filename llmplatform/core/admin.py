"""Operator console: API keys. Creating one shows the raw key once; revoking is an action."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model

from llmplatform.core.models import ApiKey
from llmplatform.core.services import api_key_create, api_key_revoke


class ApiKeyCreateForm(forms.ModelForm):
    owner = forms.ModelChoiceField(queryset=get_user_model().objects.order_by("username"))

    class Meta:
        model = ApiKey
        fields = ("owner", "name")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "owner", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("name", "prefix", "owner__username")
    ordering = ("-created_at",)
    actions = ("revoke_keys",)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("owner", "name")
        return ("name", "prefix", "owner", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("prefix", "owner", "created_at", "last_used_at", "revoked_at")

    def save_model(self, request, obj: ApiKey, form, change) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        api_key, raw_key = api_key_create(
            owner=form.cleaned_data["owner"], name=form.cleaned_data["name"]
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
