"""Operator console for sessions and their events.

The Experiment admin lives in ``analytics.admin``: its results page reads queries, which
this app may not import.
"""

from __future__ import annotations

from bson import ObjectId
from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models.fields.json import KeyTransform
from django.http import HttpRequest

from llmplatform.admin_site import ReadOnlyAdmin
from llmplatform.core.pagination import LookaheadPaginatorAdminMixin
from sessions.models import Event, Experiment, Session
from sessions.selectors import session_metrics_document
from sessions.services import EVENT_TYPES

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
