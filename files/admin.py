"""Operator console: uploaded files (metadata read-only; delete removes the bytes too)."""

from __future__ import annotations

from django.contrib import admin

from files.models import File
from files.services import file_delete
from llmplatform.admin_site import ReadOnlyAdmin


@admin.register(File)
class FileAdmin(ReadOnlyAdmin):
    list_display = ("filename", "user_id", "owner", "content_type", "size", "uploaded_at")
    list_filter = ("content_type", ("uploaded_at", admin.DateFieldListFilter))
    search_fields = ("filename", "user_id", "sha256")
    ordering = ("-uploaded_at",)

    def delete_model(self, request, obj: File) -> None:
        file_delete(file=obj)

    def delete_queryset(self, request, queryset) -> None:
        # The default bulk delete would leave the bytes behind under UPLOAD_DIR.
        for file in queryset:
            file_delete(file=file)
