"""Response shapes of the analytics API."""

from __future__ import annotations

from rest_framework import serializers

from sessions.serializers import ExperimentSerializer


class ComparisonSerializer(serializers.Serializer):
    """One metric of a variant against control (``analytics.selectors.Comparison``)."""

    status = serializers.ChoiceField(
        choices=["baseline", "not_enough_data", "estimated"],
        help_text="baseline: this is control; not_enough_data: below the stated minimum",
    )
    difference = serializers.FloatField(allow_null=True, help_text="variant minus control")
    ci_low = serializers.FloatField(allow_null=True, help_text="95% interval")
    ci_high = serializers.FloatField(allow_null=True)
    significant = serializers.BooleanField(help_text="the 95% interval excludes 0")


class StoppingSerializer(serializers.Serializer):
    """The stopping rule (``analytics.sequential``): an always-valid confidence sequence."""

    verdict = serializers.ChoiceField(
        choices=["better", "worse", "no_difference_yet"],
        help_text="the variant against control; safe to read at any look, however often",
    )
    rated = serializers.IntegerField(help_text="rated queries in this variant")
    control_rated = serializers.IntegerField(help_text="rated queries in control")
    difference = serializers.FloatField(
        allow_null=True, help_text="thumbs-up rate minus control's; null below the minimum"
    )
    cs_low = serializers.FloatField(
        allow_null=True, help_text="always-valid (normal-mixture) confidence sequence"
    )
    cs_high = serializers.FloatField(allow_null=True)
    alpha = serializers.FloatField(help_text="0.05 split over the variants compared")
    mixing_sd = serializers.FloatField(help_text="tau of the normal mixture")
    more_rated_per_arm = serializers.IntegerField(
        allow_null=True,
        help_text="estimated further ratings per arm to decide if the observed difference "
        "is real; null once decided or with no difference observed",
    )
    look_again_after_rated = serializers.IntegerField(
        allow_null=True, help_text="look again after this many more ratings per arm"
    )


class OnlineScoreSerializer(serializers.Serializer):
    """One scorer's live scores in one arm (``analytics.online_scores.ScorerSummary``)."""

    n = serializers.IntegerField(help_text="answers scored")
    unscored = serializers.IntegerField(help_text="answers the scorer could not score")
    mean = serializers.FloatField(allow_null=True, help_text="mean score, 0 to 1")
    ci_low = serializers.FloatField(allow_null=True, help_text="95% t interval of the mean")
    ci_high = serializers.FloatField(allow_null=True)
    cost_usd = serializers.FloatField(help_text="what the scorer (a judge) cost")


class VariantResultSerializer(serializers.Serializer):
    """One row of ``analytics.experiments.experiment_results``: the admin results page's numbers."""

    name = serializers.CharField()
    weight = serializers.FloatField()
    is_control = serializers.BooleanField(help_text='the baseline: "control", else the first')
    sessions = serializers.IntegerField(help_text="sessions assigned to the variant")
    queries = serializers.IntegerField(help_text="queries exposed to the experiment")
    excluded_queries = serializers.IntegerField(
        help_text="queries of the variant's sessions not exposed (see excluded_reasons)"
    )
    excluded_reasons = serializers.DictField(
        child=serializers.IntegerField(),
        help_text='"request_set:<field>" (the request chose a varied field) or '
        '"conflict:<field>" (an older experiment varies it) -> queries',
    )
    rated = serializers.IntegerField(help_text="queries with thumbs up or down")
    thumbs_up = serializers.IntegerField()
    thumbs_up_rate = serializers.FloatField(allow_null=True, help_text="thumbs_up / rated")
    errors = serializers.IntegerField(help_text="exposed queries that failed")
    error_rate = serializers.FloatField(allow_null=True, help_text="errors / queries")
    difference = serializers.FloatField(
        allow_null=True,
        help_text="thumbs-up rate minus control's; null for control or not enough data",
    )
    ci_low = serializers.FloatField(allow_null=True, help_text="95% interval of the difference")
    ci_high = serializers.FloatField(allow_null=True)
    significant = serializers.BooleanField(help_text="the 95% interval excludes 0")
    thumbs_up_comparison = ComparisonSerializer(help_text="Newcombe hybrid score interval")
    cost_comparison = ComparisonSerializer(help_text="cost per query, Welch t interval (USD)")
    latency_comparison = ComparisonSerializer(help_text="total latency, Welch t interval (ms)")
    stopping = StoppingSerializer(
        allow_null=True, help_text="the stopping rule's verdict; null for control"
    )
    average_latency_ms = serializers.FloatField(allow_null=True)
    latency_p50_ms = serializers.FloatField(allow_null=True)
    latency_p95_ms = serializers.FloatField(allow_null=True)
    total_tokens = serializers.IntegerField()
    tokens_per_query = serializers.FloatField(allow_null=True)
    cost_usd = serializers.FloatField()
    cost_per_query_usd = serializers.FloatField(allow_null=True)
    online_scores = serializers.DictField(
        child=OnlineScoreSerializer(),
        help_text="scorer name -> its scores of this arm's sampled live answers "
        "(PUT /api/v1/experiments/{id}/online-scoring)",
    )


class SampleRatioSerializer(serializers.Serializer):
    chi_square = serializers.FloatField()
    degrees_of_freedom = serializers.IntegerField()
    p_value = serializers.FloatField()


class ExperimentResultsSerializer(serializers.Serializer):
    experiment = ExperimentSerializer()
    control = serializers.CharField(
        allow_null=True, help_text='the arm compared against: "control", else the first'
    )
    variants = VariantResultSerializer(many=True)
    srm = serializers.BooleanField(
        help_text="sample-ratio mismatch: sessions per arm differ from the weights with "
        "p < minimums.srm_p_value; do not trust the differences"
    )
    sample_ratio = SampleRatioSerializer(
        allow_null=True, help_text="chi-square of sessions per arm against the weights"
    )
    minimums = serializers.DictField(
        child=serializers.FloatField(), help_text="below these, not_enough_data"
    )
