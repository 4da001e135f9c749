"""``GET /api/v1/analytics/summary`` and ``GET /api/v1/experiments/{id}/results``."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.experiments import experiment_report
from analytics.selectors import analytics_range, analytics_summary
from analytics.serializers import ExperimentResultsSerializer
from analytics.services import experiment_indexes_ensure
from sessions.selectors import experiment_get


class AnalyticsSummaryView(APIView):
    @extend_schema(
        summary="Per-day sessions, queries, events, average duration, tokens and cost by model",
        parameters=[
            OpenApiParameter(
                "from", OpenApiTypes.DATE, description="inclusive; default to - 6 days"
            ),
            OpenApiParameter("to", OpenApiTypes.DATE, description="inclusive (UTC); default today"),
        ],
        responses={200: inline_serializer("AnalyticsSummary", {"days": serializers.ListField()})},
    )
    def get(self, request: Request) -> Response:
        start, end = analytics_range(
            start=request.query_params.get("from"), end=request.query_params.get("to")
        )
        return Response(analytics_summary(owner=request.user, start=start, end=end))


class ExperimentResultsView(APIView):
    @extend_schema(
        summary="Per variant: exposure, thumbs-up rate, errors, latency, tokens and cost, "
        "each against control with a 95% interval; and the sample-ratio-mismatch check",
        description="The numbers of the admin results page (analytics.selectors."
        "experiment_report), for one of your experiments. Intervals: Newcombe for the "
        "thumbs-up rate, Welch for cost per query and latency (analytics.statistics). "
        "Each variant's `stopping` is the stopping rule: better / worse / no_difference_yet "
        "from an always-valid confidence sequence, safe to read at any look "
        "(analytics.sequential).",
        responses={200: ExperimentResultsSerializer},
    )
    def get(self, request: Request, experiment_id: str) -> Response:
        experiment = experiment_get(owner=request.user, experiment_id=experiment_id)
        experiment_indexes_ensure(experiment=experiment)  # as the admin page does
        report = experiment_report(experiment=experiment)
        body = {
            "experiment": experiment,
            "control": report.control,
            "variants": report.variants,
            "srm": report.srm,
            "sample_ratio": report.sample_ratio,
            "minimums": report.minimums,
        }
        return Response(ExperimentResultsSerializer(body).data)
