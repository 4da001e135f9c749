"""Operator console: queries and summaries, read-only (the API writes them)."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from llmplatform.admin_site import ReadOnlyAdmin
from queries.models import Query, Summary


@admin.register(Query)
class QueryAdmin(ReadOnlyAdmin):
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
        "model_provider",
        "model_name",
        "mode",
        "feedback_rating",
        ("timestamp", admin.DateFieldListFilter),
    )
    search_fields = ("user_id", "session_id", "query")
    date_hierarchy = "timestamp"
    ordering = ("-timestamp",)
    # The embedding is 1,536 floats: useless to read, slow to render.
    exclude = ("embedding",)

    def get_queryset(self, request):
        # The list and detail pages never show the 1,536-float vector: don't load it.
        return super().get_queryset(request).defer("embedding")

    readonly_fields = ("usage_pretty", "latency_pretty")

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
class SummaryAdmin(ReadOnlyAdmin):
    list_display = ("session_id", "user_id", "pair_count", "model_name", "created_at")
    list_filter = (("created_at", admin.DateFieldListFilter), "model_provider")
    search_fields = ("session_id", "user_id", "summary")
    ordering = ("-created_at",)
