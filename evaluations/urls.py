from __future__ import annotations

from django.urls import path

from evaluations.views import (
    DatasetDetailView,
    DatasetItemsView,
    DatasetListView,
    EvaluationDetailView,
    EvaluationListView,
)

urlpatterns = [
    path("datasets", DatasetListView.as_view(), name="dataset-list"),
    path("datasets/<str:dataset_id>", DatasetDetailView.as_view(), name="dataset-detail"),
    path("datasets/<str:dataset_id>/items", DatasetItemsView.as_view(), name="dataset-items"),
    path("evaluations", EvaluationListView.as_view(), name="evaluation-list"),
    path("evaluations/<str:run_id>", EvaluationDetailView.as_view(), name="evaluation-detail"),
]
