"""Operator console for sessions, their events, and experiments."""

from __future__ import annotations

import json

from bson import ObjectId
from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models.fields.json import KeyTransform
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from llmplatform.admin_site import ReadOnlyAdmin
from llmplatform.core.errors import ApplicationError
from llmplatform.core.pagination import LookaheadPaginatorAdminMixin
from sessions.assignment import OVERRIDE_KEYS, variants_clean
from sessions.models import Event, Experiment, Session
from sessions.selectors import experiment_key_in_use, session_metrics_document
from sessions.services import EVENT_TYPES, experiment_save, experiment_start, experiment_stop

EVENTS_PER_PAGE = 50


class ExperimentVariantFilter(admin.SimpleListFilter):
    title = "experiment variant"
    parameter_name = "variant"

    # Keys are per owner: an owner's experiment is "key=variant@<owner id>", and filters
    # that owner's sessions; an operator-wide one is "key=variant" (every owner's).
    def lookups(self, request, model_admin):
        return [
            (
                f"{experiment.key}={variant['name']}"
                + (f"@{experiment.owner_id}" if experiment.owner_id else ""),
                f"{experiment.key}: {variant['name']}"
                + (f" ({experiment.owner})" if experiment.owner_id else ""),
            )
            for experiment in Experiment.objects.order_by("key").prefetch_related("owner")
            for variant in experiment.variants or []
        ]

    def queryset(self, request, queryset):
        if not self.value() or "=" not in self.value():
            return queryset
        key, _, variant = self.value().partition("=")
        variant, _, owner_id = variant.partition("@")
        # A key transform, not a lookup string: "?variant=isnull=x" stays a key name.
        queryset = queryset.alias(assigned=KeyTransform(key, "experiments")).filter(
            assigned=variant
        )
        if not owner_id:
            return queryset
        if not ObjectId.is_valid(owner_id):
            return queryset.none()
        return queryset.filter(owner_id=owner_id)


class DeviceFilter(admin.SimpleListFilter):
    """Device classes the chat UI and SDKs report; a fixed list, not a distinct scan."""

    title = "device"
    parameter_name = "device"
    DEVICES = ("Desktop", "Mobile", "Tablet", "Bot", "Other")

    def lookups(self, request, model_admin):
        return [(device, device) for device in self.DEVICES]

    def queryset(self, request, queryset):
        return queryset.filter(device=self.value()) if self.value() else queryset


@admin.register(Session)
class SessionAdmin(LookaheadPaginatorAdminMixin, ReadOnlyAdmin):
    list_display = (
        "session_id",
        "title",
        "user_id",
        "owner",
        "device",
        "start_t",
        "end_t",
        "event_count",
        "experiments",
    )
    list_filter = (("start_t", admin.DateFieldListFilter), DeviceFilter, ExperimentVariantFilter)
    search_fields = ("session_id", "user_id", "title")
    # Pages read off the sessions_page index (-start_t, -_id); no count, no date
    # hierarchy (a min/max and distinct over every session), no join per page: the
    # owner column is filled by one primary-key read per page (prefetch).
    ordering = ("-start_t", "-pk")
    show_full_result_count = False
    list_select_related = ()
    fields = (
        "session_id",
        "title",
        "user_id",
        "owner",
        "device",
        "environment",
        "experiments",
        "start_t",
        "end_t",
        "event_count",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("owner")

    def change_view(self, request: HttpRequest, object_id, form_url="", extra_context=None):
        session = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if session is not None:
            events = Event.objects.filter(
                owner_id=session.owner_id, session_id=session.session_id
            ).order_by("t", "pk")
            page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("events_page"))
            extra_context["events_page"] = page
            extra_context["session_metrics"] = session_metrics_document(session=session)
        return super().change_view(request, object_id, form_url, extra_context)


class EventTypeFilter(admin.SimpleListFilter):
    """The event types the API accepts; a fixed list, not a distinct over every event."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        return [(event_type, event_type) for event_type in EVENT_TYPES]

    def queryset(self, request, queryset):
        return queryset.filter(type=self.value()) if self.value() else queryset


@admin.register(Event)
class EventAdmin(LookaheadPaginatorAdminMixin, ReadOnlyAdmin):
    list_display = ("session_id", "type", "t", "event_id", "owner", "received_at")
    list_filter = (EventTypeFilter, ("received_at", admin.DateFieldListFilter))
    search_fields = ("session_id", "event_id")
    # Newest first by primary key (ObjectIds grow with time): no sort over all events.
    ordering = ("-pk",)
    show_full_result_count = False
    list_select_related = ()

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("owner")


class ExperimentForm(forms.ModelForm):
    variants = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12, "cols": 80, "class": "vLargeTextField"}),
        help_text=(
            'A JSON list of 2-10 variants: {"name": "control", "weight": 50, "overrides": '
            "{...}}. Weights are relative. Overrides may set: "
            + ", ".join(OVERRIDE_KEYS)
            + '. Results compare every variant with the one named "control" (else the first). '
            "Stop a running experiment before changing its variants."
        ),
        initial=json.dumps(
            [
                {"name": "control", "weight": 50, "overrides": {}},
                {
                    "name": "treatment",
                    "weight": 50,
                    "overrides": {"model_provider": "anthropic", "model_name": ""},
                },
            ],
            indent=2,
        ),
    )

    class Meta:
        model = Experiment
        fields = ("key", "name", "description", "owner", "variants")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["variants"] = json.dumps(self.instance.variants, indent=2)

    def clean_key(self) -> str:
        key = self.cleaned_data["key"]
        if "__" in key:
            raise forms.ValidationError("Use single '-' or '_' between words.")
        return key

    def clean(self) -> dict:
        cleaned = super().clean()
        key = cleaned.get("key") or self.instance.key
        owner = cleaned.get("owner")
        if key and experiment_key_in_use(
            owner_id=owner.pk if owner else None, key=key, exclude_pk=self.instance.pk
        ):
            # Keys are per owner; an operator-wide experiment shares a key space with all.
            raise forms.ValidationError(
                f'The key "{key}" is used by '
                + (
                    "this owner's experiment or an operator-wide one"
                    if owner
                    else "an experiment of some owner (operator-wide keys must be new to all)"
                )
                + "; choose another key."
            )
        return cleaned

    def clean_variants(self) -> list:
        try:
            raw = json.loads(self.cleaned_data["variants"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from exc
        try:
            variants = variants_clean(raw)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc
        instance = self.instance
        if (
            instance.pk is not None
            and instance.status == Experiment.Status.RUNNING
            and variants != instance.variants
        ):
            raise forms.ValidationError(
                "Stop the experiment before changing its variants or weights: changing them "
                "while it runs moves users between variants mid-test."
            )
        return variants


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    form = ExperimentForm
    list_display = (
        "key",
        "name",
        "owner",
        "status",
        "variant_summary",
        "started_at",
        "results_link",
    )
    list_filter = ("status",)
    search_fields = ("key", "name")
    # Empty: an operator-wide experiment, assigned to every owner's sessions.
    raw_id_fields = ("owner",)
    list_select_related = ()

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("owner")

    readonly_fields = ("status", "created_at", "started_at", "stopped_at")
    actions = ("start_experiments", "stop_experiments")

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # The key is in every assignment hash and stored exposure; renaming orphans both.
            fields.append("key")
        return fields

    @admin.display(description="variants")
    def variant_summary(self, experiment: Experiment) -> str:
        return ", ".join(f"{v['name']} ({v['weight']})" for v in experiment.variants or [])

    @admin.display(description="results")
    def results_link(self, experiment: Experiment) -> str:
        # The page is added by the analytics app (it reads queries); linked by name only.
        try:
            url = reverse("admin:chat_sessions_experiment_results", args=[experiment.pk])
        except NoReverseMatch:
            return "-"
        return format_html('<a href="{}">results</a>', url)

    def save_model(self, request, obj, form, change):
        try:
            experiment_save(experiment=obj, variants=form.cleaned_data["variants"])
        except ApplicationError as exc:
            # Started by someone else since the form was validated: say so, don't crash.
            self.message_user(request, f"Not saved: {exc.message}", messages.ERROR)

    @admin.action(description="Start selected experiments", permissions=["change"])
    def start_experiments(self, request, queryset):
        for experiment in queryset:
            try:
                experiment_start(experiment=experiment)
            except ApplicationError as exc:
                self.message_user(request, f"{experiment.key}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{experiment.key} is running.", messages.SUCCESS)

    @admin.action(description="Stop selected experiments", permissions=["change"])
    def stop_experiments(self, request, queryset):
        for experiment in queryset:
            experiment_stop(experiment=experiment)
        self.message_user(request, f"Stopped {queryset.count()} experiment(s).", messages.SUCCESS)
