from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from evaluations.datasets import MAX_INPUT_CHARS, MAX_ITEMS_PER_REQUEST
from evaluations.models import Dataset, DatasetItem, EvaluationRun
from evaluations.scorers import SCORER_TYPES
from evaluations.services import MAX_REPEATS, MAX_TARGETS
from llmplatform.core.pagination import CursorPageParamsSerializer


class DatasetSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="pk", read_only=True)

    class Meta:
        model = Dataset
        fields = ["id", "name", "description", "created_at"]


class DatasetCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class DatasetItemSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="pk", read_only=True)

    class Meta:
        model = DatasetItem
        fields = ["id", "input", "reference", "tags", "source_query_id", "created_at"]


class DatasetItemInputSerializer(serializers.Serializer):
    input = serializers.CharField(max_length=MAX_INPUT_CHARS, trim_whitespace=False)
    reference = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    tags = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False)

    def validate_input(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value


class DatasetItemsAddSerializer(serializers.Serializer):
    """A JSON body: the items to add."""

    items = DatasetItemInputSerializer(many=True, min_length=1, max_length=MAX_ITEMS_PER_REQUEST)


class DatasetItemsUploadSerializer(serializers.Serializer):
    """A multipart body: a JSONL file (one item a line), or a .csv with a header row
    (input, reference, tags separated by ``;``)."""

    file = serializers.FileField()


class DatasetItemsAddParamsSerializer(serializers.Serializer):
    from_feedback = serializers.ChoiceField(
        choices=["down", "up"],
        required=False,
        help_text="collect your questions rated down (or up) instead of a body",
    )


class DatasetItemsAddedSerializer(serializers.Serializer):
    added = serializers.IntegerField()


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1, "description": "an experiment key"},
            {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_TARGETS,
                "items": {
                    "type": "object",
                    "description": "overrides (model_provider, model_name, temperature, "
                    "system_prompt), or {name, overrides}",
                },
            },
        ]
    }
)
class TargetsField(serializers.JSONField):
    pass


_SCORER_TYPE = {"type": "string", "enum": list(SCORER_TYPES)}


@extend_schema_field(
    {
        "type": "array",
        "minItems": 1,
        "items": {
            "oneOf": [
                _SCORER_TYPE,
                {
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": _SCORER_TYPE},
                    "description": "a scorer and its settings: regex {pattern}, json_schema "
                    "{schema}, judge and pairwise {rubric, provider, model, temperature; "
                    "pairwise: baseline (a target's index)}, any {name}",
                },
            ]
        },
    }
)
class ScorersField(serializers.JSONField):
    pass


class OnlineScoringInputSerializer(serializers.Serializer):
    scorers = ScorersField(
        help_text="reference-free scorers: judge {rubric, provider, model, temperature}, "
        "regex {pattern}, length {min_chars, max_chars}, json_schema {schema}, contains {text}"
    )
    sample_rate = serializers.FloatField(
        min_value=0.0, max_value=1.0, help_text="the share of live answers scored, 0 to 1"
    )
    max_usd_per_day = serializers.FloatField(
        min_value=0.0, help_text="the judges' spend per UTC day; past it, scoring waits a day"
    )


class OnlineScoringSerializer(serializers.Serializer):
    experiment = serializers.CharField(help_text="the experiment's id")
    scorers = serializers.ListField(child=serializers.DictField(), help_text="as checked")
    sample_rate = serializers.FloatField()
    max_usd_per_day = serializers.FloatField()
    spent_today_usd = serializers.FloatField(help_text="the judges' spend this UTC day")
    capped_today = serializers.BooleanField(
        help_text="the day's cap is reached: judges wait for the next UTC day"
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class EvaluationCreateSerializer(serializers.Serializer):
    dataset = serializers.CharField(help_text="a dataset id")
    targets = TargetsField()
    scorers = ScorersField()
    repeats = serializers.IntegerField(default=1, min_value=1, max_value=MAX_REPEATS)


class EvaluationCreatedSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="pk", read_only=True)

    class Meta:
        model = EvaluationRun
        fields = ["id", "status", "total"]


class DatasetItemsParamsSerializer(CursorPageParamsSerializer):
    pass


class EvaluationRunSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="pk", read_only=True)
    dataset = serializers.CharField(source="dataset_id", read_only=True)

    class Meta:
        model = EvaluationRun
        fields = [
            "id",
            "dataset",
            "status",
            "total",
            "done",
            "failed",
            "created_at",
            "completed_at",
        ]
