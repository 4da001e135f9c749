from __future__ import annotations

from django.urls import path

from evaluations.views import (
    DatasetDetailView,
    DatasetItemsView,
    DatasetListView,
    EvaluationDetailView,
    EvaluationListView,
    ExperimentOnlineScoringView,
)

urlpatterns = [
    path("datasets", DatasetListView.as_view(), name="dataset-list"),
    path("datasets/<str:dataset_id>", DatasetDetailView.as_view(), name="dataset-detail"),
    path("datasets/<str:dataset_id>/items", DatasetItemsView.as_view(), name="dataset-items"),
    path("evaluations", EvaluationListView.as_view(), name="evaluation-list"),
    path("evaluations/<str:run_id>", EvaluationDetailView.as_view(), name="evaluation-detail"),
    # An experiment's online scoring lives with the scorers (evaluations sits above
    # sessions, which serves the experiment itself).
    path(
        "experiments/<str:experiment_id>/online-scoring",
        ExperimentOnlineScoringView.as_view(),
        name="experiment-online-scoring",
    ),
]
