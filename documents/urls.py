from __future__ import annotations

from django.urls import path

from documents.views import FileUploadView, SearchView

urlpatterns = [
    path("files/upload", FileUploadView.as_view(), name="file-upload"),
    path("search", SearchView.as_view(), name="search"),
]
