from __future__ import annotations

from django.urls import path

from queries.views import (
    QueryCancelView,
    QueryDetailView,
    QueryFeedbackView,
    QueryHistoryView,
    QueryView,
)

urlpatterns = [
    path("query/", QueryView.as_view(), name="query"),
    path("query/history", QueryHistoryView.as_view(), name="query-history"),
    path("query/<str:query_id>", QueryDetailView.as_view(), name="query-detail"),
    path("query/<str:query_id>/feedback", QueryFeedbackView.as_view(), name="query-feedback"),
    path("query/<str:query_id>/cancel", QueryCancelView.as_view(), name="query-cancel"),
]
