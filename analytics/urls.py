from __future__ import annotations

from django.urls import path

from analytics import views

urlpatterns = [
    path("analytics/summary", views.AnalyticsSummaryView.as_view(), name="analytics-summary"),
    path(
        "experiments/<str:experiment_id>/results",
        views.ExperimentResultsView.as_view(),
        name="experiment-results",
    ),
]
