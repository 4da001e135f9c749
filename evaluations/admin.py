"""Operator console: datasets and their items (editable), evaluation runs and results
(read-only: they are the record of what was asked and how it scored), experiments' online
scoring (its scores show on the experiment's results page), and the query list's "add to an
evaluation dataset" action.

The action belongs to evaluations, which sits above queries: queries cannot import it, so
it is added to the query list's own admin through ``admin.site.register_action``.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import ModelAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from evaluations.datasets import MAX_ITEMS_PER_REQUEST, dataset_create, dataset_items_from_queries
from evaluations.models import (
    Dataset,
    DatasetItem,
    EvaluationResult,
    EvaluationRun,
    OnlineScoring,
)
from evaluations.online_scoring import online_scorers_check, online_scoring_set
from evaluations.selectors import (
    dataset_get,
    dataset_list,
    evaluation_report,
    online_scoring_report,
)
from llmplatform.admin_site import ReadOnlyAdmin
from llmplatform.core.errors import ApplicationError
from llmplatform.core.pagination import LookaheadPaginatorAdminMixin
from queries.models import Query


class DatasetItemInline(admin.TabularInline):
    model = DatasetItem
    fields = ("input", "reference", "tags")
    extra = 1
    show_change_link = True


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "created_at")
    search_fields = ("name",)
    ordering = ("-pk",)
    inlines = [DatasetItemInline]


@admin.register(DatasetItem)
class DatasetItemAdmin(LookaheadPaginatorAdminMixin, admin.ModelAdmin):
    list_display = ("input", "reference", "dataset", "created_at")
    search_fields = ("input", "reference")
    ordering = ("-pk",)
    show_full_result_count = False


# The results chart: one bar per target and scorer, its 95% interval as a whisker.
CHART_WIDTH = 320
CHART_ROW = 18


def _bar(mean: float | None, low: float | None, high: float | None) -> str:
    if mean is None:
        return "no scores"
    return format_html(
        '<svg width="{}" height="{}" role="img" aria-label="mean {} (95% interval {} to {})">'
        '<rect x="0" y="3" width="{}" height="12" fill="#79aec8"></rect>'
        '<line x1="{}" x2="{}" y1="9" y2="9" stroke="#333" stroke-width="2"></line>'
        "</svg>",
        CHART_WIDTH,
        CHART_ROW,
        mean,
        low,
        high,
        round(mean * CHART_WIDTH, 1),
        round((low or 0) * CHART_WIDTH, 1),
        round((high or 0) * CHART_WIDTH, 1),
    )


@admin.register(EvaluationRun)
class EvaluationRunAdmin(ReadOnlyAdmin):
    list_display = ("pk", "dataset", "owner", "status", "done", "failed", "total", "created_at")
    list_filter = ("status",)
    ordering = ("-pk",)
    readonly_fields = ("results", "report")

    @admin.display(description="results (mean per target and scorer, 95% interval)")
    def results(self, run: EvaluationRun) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} [{}, {}]</td><td>{}</td><td>{}</td>"
            "<td>{}</td></tr>",
            (
                (
                    target["name"],
                    name,
                    _bar(scored["mean"], scored["low"], scored["high"]),
                    scored["mean"],
                    scored["low"],
                    scored["high"],
                    scored["n"],
                    target["cost_usd"],
                    target["latency_ms"]["p50"],
                )
                for target in evaluation_report(run=run)["targets"]
                for name, scored in target["scorers"].items()
            ),
        )
        return format_html(
            "<table><tr><th>target</th><th>scorer</th><th>0 to 1</th><th>mean [95%]</th>"
            "<th>n</th><th>cost (USD)</th><th>p50 latency (ms)</th></tr>{}</table>",
            rows,
        )

    @admin.display(description="report (worst items with answers and reasons)")
    def report(self, run: EvaluationRun) -> str:
        report = evaluation_report(run=run)
        return format_html("<pre>{}</pre>", json.dumps(report["targets"], default=str, indent=2))


@admin.register(EvaluationResult)
class EvaluationResultAdmin(LookaheadPaginatorAdminMixin, ReadOnlyAdmin):
    list_display = ("run", "item", "target", "repeat", "status", "cost_usd", "latency_ms")
    list_filter = ("status",)
    ordering = ("-pk",)
    show_full_result_count = False


class OnlineScoringForm(forms.ModelForm):
    scorers = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80, "class": "vLargeTextField"}),
        help_text=(
            "A JSON list of reference-free scorers: "
            '{"type": "judge", "rubric": "...", "provider": "local"}, '
            '{"type": "regex", "pattern": "..."}, {"type": "length", "max_chars": 800}, '
            '{"type": "json_schema", "schema": {}}, {"type": "contains", "text": "..."}.'
        ),
        initial=json.dumps([{"type": "judge", "rubric": "Is the answer helpful and correct?"}]),
    )

    class Meta:
        model = OnlineScoring
        fields = ("experiment", "scorers", "sample_rate", "max_usd_per_day")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["scorers"] = json.dumps(self.instance.scorers, indent=2)

    def clean_scorers(self) -> list:
        try:
            raw = json.loads(self.cleaned_data["scorers"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from exc
        try:
            return online_scorers_check(raw)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc


@admin.register(OnlineScoring)
class OnlineScoringAdmin(admin.ModelAdmin):
    form = OnlineScoringForm
    list_display = ("experiment", "sample_rate", "max_usd_per_day", "spent_today", "results")
    raw_id_fields = ("experiment",)
    ordering = ("-pk",)

    @admin.display(description="spent today (USD)")
    def spent_today(self, config: OnlineScoring) -> float:
        return online_scoring_report(config=config)["spent_today_usd"]

    @admin.display(description="scores")
    def results(self, config: OnlineScoring) -> str:
        url = reverse("admin:chat_sessions_experiment_results", args=[config.experiment_id])
        return format_html('<a href="{}">results per arm</a>', url)

    def save_model(self, request, obj, form, change):
        # Through the service, as over REST: a changed scorer list or rate goes over the
        # experiment's answers again (nothing is scored twice).
        saved = online_scoring_set(
            experiment=obj.experiment,
            scorers=form.cleaned_data["scorers"],
            sample_rate=form.cleaned_data["sample_rate"],
            max_usd_per_day=form.cleaned_data["max_usd_per_day"],
            api_key=obj.api_key,
        )
        obj.pk, obj.scanned_through = saved.pk, saved.scanned_through

    def get_readonly_fields(self, request, obj=None):
        # Its scores and cursor belong to one experiment: configure another one anew.
        return ("experiment",) if obj is not None else ()


@admin.action(description="Add selected questions to an evaluation dataset")
def add_to_dataset(model_admin: ModelAdmin, request: HttpRequest, queryset: QuerySet[Query]):
    queries = list(queryset.defer("embedding")[: MAX_ITEMS_PER_REQUEST + 1])
    owners = {query.owner_id for query in queries}
    if len(owners) != 1 or len(queries) > MAX_ITEMS_PER_REQUEST:
        model_admin.message_user(
            request,
            f"Choose at most {MAX_ITEMS_PER_REQUEST} questions of one owner: a dataset "
            "belongs to one owner.",
            messages.ERROR,
        )
        return None
    owner = queries[0].owner
    if "apply" not in request.POST:
        return TemplateResponse(
            request,
            "admin/evaluations/add_to_dataset.html",
            {
                **model_admin.admin_site.each_context(request),
                "title": "Add to an evaluation dataset",
                "queries": queries,
                "owner": owner,
                "datasets": dataset_list(owner=owner).order_by("name"),
            },
        )
    chosen, new_name = request.POST.get("dataset"), request.POST.get("new_name", "").strip()
    if not (chosen or new_name):
        model_admin.message_user(request, "Choose a dataset or name a new one.", messages.ERROR)
        return None
    try:
        dataset = (
            dataset_get(owner=owner, dataset_id=chosen)
            if chosen
            else dataset_create(owner=owner, name=new_name)
        )
    except ApplicationError as exc:
        model_admin.message_user(request, exc.message, messages.ERROR)
        return None
    added = dataset_items_from_queries(
        dataset=dataset,
        queries=queries,
        tag="admin",
        answers_as_references=bool(request.POST.get("answers_as_references")),
    )
    model_admin.message_user(
        request, f"Added {len(added)} item(s) to the dataset {dataset.name!r}."
    )
    return None


admin.site.register_action(Query, add_to_dataset)
