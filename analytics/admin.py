"""The Experiment admin with its results page, and the operator dashboard.

The Experiment model belongs to ``sessions``, but its admin is registered here, once:
the results page reads queries, and ``analytics`` is the lowest app that may import both.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from analytics.charts import bar_chart
from analytics.dashboard import dashboard_view
from analytics.experiments import experiment_report
from analytics.services import experiment_indexes_ensure
from llmplatform.core.errors import ApplicationError
from sessions.assignment import OVERRIDE_KEYS, variants_clean
from sessions.experiments import experiment_save, experiment_start, experiment_stop
from sessions.models import Experiment
from sessions.selectors import experiment_key_in_use


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
        url = reverse("admin:chat_sessions_experiment_results", args=[experiment.pk])
        return format_html('<a href="{}">results</a>', url)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/results/",
                self.admin_site.admin_view(self.results_view),
                name="chat_sessions_experiment_results",
            ),
            *super().get_urls(),
        ]

    def results_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        experiment = self.get_object(request, object_id)
        if experiment is None:
            raise Http404("No such experiment.")
        experiment_indexes_ensure(experiment=experiment)
        report = experiment_report(experiment=experiment)
        results = report.variants
        context = {
            "report": report,
            **self.admin_site.each_context(request),
            "title": f"Results: {experiment.key}",
            "experiment": experiment,
            "opts": self.model._meta,
            "results": results,
            "sessions_chart": bar_chart(
                title="Sessions per variant",
                points=[(result.name, result.sessions) for result in results],
            ),
            "thumbs_chart": bar_chart(
                title="Thumbs-up rate per variant (%)",
                points=[
                    (result.name, round((result.thumbs_up_rate or 0) * 100, 1))
                    for result in results
                ],
            ),
        }
        return TemplateResponse(request, "admin/chat_sessions/experiment/results.html", context)

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


admin.site.register_page("dashboard/", dashboard_view, name="dashboard")
