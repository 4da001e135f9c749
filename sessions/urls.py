from __future__ import annotations

from django.urls import path

from sessions import views

urlpatterns = [
    path("session/start", views.SessionStartView.as_view(), name="session-start"),
    path("session/event", views.SessionEventView.as_view(), name="session-event"),
    path("session/events", views.SessionEventsView.as_view(), name="session-events"),
    path("session/end", views.SessionEndView.as_view(), name="session-end"),
    path("session/<str:session_id>", views.SessionDetailView.as_view(), name="session-detail"),
    path("experiments", views.ExperimentListView.as_view(), name="experiment-list"),
    path(
        "experiments/<str:experiment_id>",
        views.ExperimentDetailView.as_view(),
        name="experiment-detail",
    ),
    path(
        "experiments/<str:experiment_id>/start",
        views.ExperimentStartView.as_view(),
        name="experiment-start",
    ),
    path(
        "experiments/<str:experiment_id>/stop",
        views.ExperimentStopView.as_view(),
        name="experiment-stop",
    ),
]
