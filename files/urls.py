from __future__ import annotations

from django.urls import path

from files.views import FileDetailView, FileListView, FileUploadView

urlpatterns = [
    path("files/upload", FileUploadView.as_view(), name="file-upload"),
    path("files/", FileListView.as_view(), name="file-list"),
    path("files/<str:file_id>", FileDetailView.as_view(), name="file-detail"),
]
