from __future__ import annotations

from django.urls import path

from files.views import FileContentView, FileDetailView, FileListView, FileUploadView

urlpatterns = [
    # Before files/<file_id>, which would take "upload" for an id.
    path("files/upload", FileUploadView.as_view(), name="file-upload"),
    path("files/", FileListView.as_view(), name="file-list"),
    path("files/<str:file_id>/content", FileContentView.as_view(), name="file-content"),
    path("files/<str:file_id>", FileDetailView.as_view(), name="file-detail"),
]
