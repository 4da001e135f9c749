from __future__ import annotations

from django.urls import path

from queries.views import (
    QueryCancelView,
    QueryDetailView,
    QueryFeedbackView,
    QueryHistoryView,
    QueryResumeStreamView,
    QueryStreamView,
    QueryTraceView,
    QueryView,
)

urlpatterns = [
    path("query/", QueryView.as_view(), name="query"),
    path("query/history", QueryHistoryView.as_view(), name="query-history"),
    # Served by queries.consumers under daphne; these views document them in /openapi.json.
    path("query/stream", QueryStreamView.as_view(), name="query-stream"),
    path("query/<str:query_id>/stream", QueryResumeStreamView.as_view(), name="query-resume"),
    path("query/<str:query_id>", QueryDetailView.as_view(), name="query-detail"),
    path("query/<str:query_id>/trace", QueryTraceView.as_view(), name="query-trace"),
    path("query/<str:query_id>/feedback", QueryFeedbackView.as_view(), name="query-feedback"),
    path("query/<str:query_id>/cancel", QueryCancelView.as_view(), name="query-cancel"),
]
