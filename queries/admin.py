"""Operator console: queries and summaries, read-only (the API writes them).

Change lists stay as fast at 1M rows as at 1k: pages are read off an index in list
order, nothing counts the whole collection (look-ahead paginator, no full count), and no
filter runs a distinct over every row (fixed choices instead of AllValuesFieldListFilter,
no date hierarchy).
"""

from __future__ import annotations

import json

from django.contrib import admin
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from files.vector_cache import vector_cache_forget
from llmplatform.admin_site import ReadOnlyAdmin
from llmplatform.core.pagination import LookaheadPaginatorAdminMixin
from queries.models import Query, Summary
from queries.selectors import query_trace, trace_duration_ms, trace_waterfall


class ProviderFilter(admin.SimpleListFilter):
    title = "model provider"
    parameter_name = "model_provider"

    def lookups(self, request, model_admin):
        # The registry's names, a fixed list: not a distinct over every query.
        from agents.providers.registry import CLOUD_PROVIDERS

        return [(name, name) for name in (*CLOUD_PROVIDERS, "local")]

    def queryset(self, request, queryset):
        return queryset.filter(model_provider=self.value()) if self.value() else queryset


class ModeFilter(admin.SimpleListFilter):
    title = "mode"
    parameter_name = "mode"

    def lookups(self, request, model_admin):
        return [("chat", "chat"), ("shopping", "shopping")]

    def queryset(self, request, queryset):
        return queryset.filter(mode=self.value()) if self.value() else queryset


class FeedbackFilter(admin.SimpleListFilter):
    title = "feedback"
    parameter_name = "feedback_rating"

    def lookups(self, request, model_admin):
        return [("1", "thumbs up"), ("-1", "thumbs down"), ("none", "none")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(feedback_rating__isnull=True)
        if self.value() in ("1", "-1"):
            return queryset.filter(feedback_rating=int(self.value()))
        return queryset


@admin.register(Query)
class QueryAdmin(LookaheadPaginatorAdminMixin, ReadOnlyAdmin):
    list_display = (
        "short_question",
        "user_id",
        "session_id",
        "model_provider",
        "model_name",
        "status",
        "total_tokens",
        "cost_usd",
        "total_ms",
        "feedback_rating",
        "timestamp",
    )
    list_filter = (
        "status",
        ProviderFilter,
        ModeFilter,
        FeedbackFilter,
        ("timestamp", admin.DateFieldListFilter),
    )
    search_fields = ("user_id", "session_id", "query")
    # The queries_page index (-timestamp, -_id) gives this order.
    ordering = ("-timestamp", "-pk")
    show_full_result_count = False
    # The embedding is 1,536 floats: useless to read, slow to render.
    exclude = ("embedding",)
    readonly_fields = ("trace_link", "usage_pretty", "latency_pretty")

    def get_queryset(self, request):
        # The list and detail pages never show the 1,536-float vector: don't load it.
        return super().get_queryset(request).defer("embedding")

    def delete_model(self, request, obj: Query) -> None:
        super().delete_model(request, obj)
        vector_cache_forget(owner_id=obj.owner_id, user_id=obj.user_id, query_ids=[obj.pk])

    def delete_queryset(self, request, queryset) -> None:
        deleted = list(queryset.values_list("owner_id", "user_id", "pk"))
        super().delete_queryset(request, queryset)
        for owner_id, user_id, pk in deleted:
            vector_cache_forget(owner_id=owner_id, user_id=user_id, query_ids=[pk])

    def get_urls(self):
        trace = path(
            "<path:object_id>/trace/",
            self.admin_site.admin_view(self.trace_view),
            name="queries_query_trace",
        )
        return [trace, *super().get_urls()]

    def trace_view(self, request, object_id: str):
        """The query's trace as a waterfall: each step's bar on the run's timeline, with
        its duration, tokens and cost; a step opens to show its attributes."""
        query = get_object_or_404(self.get_queryset(request), pk=object_id)
        spans = query_trace(query=query)
        rows = trace_waterfall(spans)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Trace of {query.query[:60]!r}",
            "opts": self.model._meta,
            "original": query,
            "rows": rows,
            "total_ms": trace_duration_ms(spans),
        }
        return TemplateResponse(request, "admin/queries/query_trace.html", context)

    @admin.display(description="trace")
    def trace_link(self, query: Query) -> str:
        if not query.trace_id:
            return "—"
        url = reverse("admin:queries_query_trace", args=[query.pk])
        return format_html('<a href="{}">Waterfall of trace {}</a>', url, query.trace_id)

    @admin.display(description="question")
    def short_question(self, query: Query) -> str:
        return query.query[:80]

    @admin.display(description="tokens")
    def total_tokens(self, query: Query):
        return (query.usage or {}).get("total_tokens")

    @admin.display(description="cost (USD)")
    def cost_usd(self, query: Query):
        return (query.usage or {}).get("cost_usd")

    @admin.display(description="latency (ms)")
    def total_ms(self, query: Query):
        return (query.latency or {}).get("total_ms")

    @admin.display(description="usage")
    def usage_pretty(self, query: Query) -> str:
        return format_html("<pre>{}</pre>", json.dumps(query.usage, indent=2))

    @admin.display(description="latency")
    def latency_pretty(self, query: Query) -> str:
        return format_html("<pre>{}</pre>", json.dumps(query.latency, indent=2))


@admin.register(Summary)
class SummaryAdmin(LookaheadPaginatorAdminMixin, ReadOnlyAdmin):
    list_display = ("session_id", "user_id", "pair_count", "model_name", "created_at")
    list_filter = (("created_at", admin.DateFieldListFilter), ProviderFilter)
    search_fields = ("session_id", "user_id", "summary")
    # Newest first by primary key (summaries are stored when made): the _id index.
    ordering = ("-pk",)
    show_full_result_count = False
