"""The operator dashboard: queries, latency, cost and sessions per day, as SVG charts,
and the slowest steps per day from the trace store.

Every chart comes from one read of the day rollups (``analytics.selectors.day_facts``):
its cost grows with the days shown, not with the queries stored. The slowest steps read
the stored spans of the range, which the store keeps for TRACE_RETENTION_DAYS only.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from analytics.charts import bar_chart, line_chart
from analytics.selectors import (
    SLOWEST_STEPS_PER_DAY,
    analytics_summary,
    cost_by_provider,
    day_facts,
    latency_percentiles_by_day,
    slowest_steps_by_day,
)

DASHBOARD_DAYS = (7, 30, 90)


def dashboard_view(request: HttpRequest) -> HttpResponse:
    # Query contents are the most sensitive data shown here; sessions are aggregated only.
    if not request.user.has_perm("queries.view_query"):
        raise PermissionDenied
    try:
        days = int(request.GET.get("days", 30))
    except ValueError:
        days = 30
    if days not in DASHBOARD_DAYS:
        days = 30
    end = timezone.now().date()
    start = end - timedelta(days=days - 1)
    facts = day_facts(owner=None, start=start, end=end)
    summary = analytics_summary(owner=None, start=start, end=end, facts=facts)
    latency = latency_percentiles_by_day(start=start, end=end, facts=facts)
    providers = cost_by_provider(start=start, end=end, facts=facts)
    labels = [row["date"][5:] for row in summary["days"]]
    charts = [
        (
            "Queries per day",
            bar_chart(
                title="Queries per day",
                points=[
                    (label, row["queries"])
                    for label, row in zip(labels, summary["days"], strict=True)
                ],
            ),
        ),
        (
            "Latency p50 / p95 (ms, completed queries)",
            line_chart(
                title="Latency p50 and p95",
                labels=labels,
                series={
                    "p50": [row["p50"] for row in latency],
                    "p95": [row["p95"] for row in latency],
                },
            ),
        ),
        (
            "Cost per provider (USD)",
            bar_chart(
                title="Cost per provider",
                points=[(row["provider"], row["cost_usd"]) for row in providers],
            ),
        ),
        (
            "Sessions per day",
            bar_chart(
                title="Sessions per day",
                points=[
                    (label, row["sessions"])
                    for label, row in zip(labels, summary["days"], strict=True)
                ],
            ),
        ),
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "days": days,
        "day_choices": DASHBOARD_DAYS,
        "charts": charts,
        "totals": summary["totals"],
        "providers": providers,
        "slowest_steps": slowest_steps_by_day(
            start=max(start, end - timedelta(days=settings.TRACE_RETENTION_DAYS)), end=end
        ),
        "steps_per_day": SLOWEST_STEPS_PER_DAY,
        "trace_retention_days": settings.TRACE_RETENTION_DAYS,
    }
    return TemplateResponse(request, "admin/dashboard.html", context)
