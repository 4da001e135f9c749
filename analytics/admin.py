"""The experiment results page, added to the Experiment admin from here.

``sessions`` may not import this app (analytics reads queries, which depend on
sessions), so the Experiment admin links to the page by URL name and this module adds
the page to that admin, keeping its URL, name and permissions.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from analytics.dashboard import dashboard_view
from analytics.selectors import experiment_report
from analytics.services import experiment_indexes_ensure
from llmplatform.charts import bar_chart
from sessions.admin import ExperimentAdmin
from sessions.models import Experiment


class ExperimentWithResultsAdmin(ExperimentAdmin):
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


admin.site.unregister(Experiment)
admin.site.register(Experiment, ExperimentWithResultsAdmin)


admin.site.register_page("dashboard/", dashboard_view, name="dashboard")
