"""Response shapes of the analytics API."""

from __future__ import annotations

from rest_framework import serializers

from sessions.serializers import ExperimentSerializer


class VariantResultSerializer(serializers.Serializer):
    """One row of ``analytics.selectors.experiment_results``: the admin results page's numbers."""

    name = serializers.CharField()
    weight = serializers.FloatField()
    is_control = serializers.BooleanField(help_text='the baseline: "control", else the first')
    sessions = serializers.IntegerField(help_text="sessions assigned to the variant")
    queries = serializers.IntegerField(help_text="queries the variant shaped")
    rated = serializers.IntegerField(help_text="queries with thumbs up or down")
    thumbs_up = serializers.IntegerField()
    thumbs_up_rate = serializers.FloatField(allow_null=True, help_text="thumbs_up / rated")
    difference = serializers.FloatField(
        allow_null=True, help_text="thumbs-up rate minus control's; null for control or no data"
    )
    ci_low = serializers.FloatField(allow_null=True, help_text="95% interval of the difference")
    ci_high = serializers.FloatField(allow_null=True)
    significant = serializers.BooleanField(help_text="the 95% interval excludes 0")
    average_latency_ms = serializers.FloatField(allow_null=True)
    latency_p50_ms = serializers.FloatField(allow_null=True)
    latency_p95_ms = serializers.FloatField(allow_null=True)
    total_tokens = serializers.IntegerField()
    cost_usd = serializers.FloatField()


class ExperimentResultsSerializer(serializers.Serializer):
    experiment = ExperimentSerializer()
    variants = VariantResultSerializer(many=True)
