from __future__ import annotations

from django.urls import path

from files.views import FileContentView, FileDetailView, FileListView

# POST files/upload is routed by documents.urls (it queues ingestion).
urlpatterns = [
    path("files/", FileListView.as_view(), name="file-list"),
    path("files/<str:file_id>/content", FileContentView.as_view(), name="file-content"),
    path("files/<str:file_id>", FileDetailView.as_view(), name="file-detail"),
]
