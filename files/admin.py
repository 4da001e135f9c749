"""Operator console: uploaded files (metadata read-only; delete removes the bytes too)."""

from __future__ import annotations

from django.contrib import admin

from files.models import File
from files.services import file_delete
from llmplatform.admin_site import ReadOnlyAdmin
from llmplatform.core.pagination import LookaheadPaginatorAdminMixin


@admin.register(File)
class FileAdmin(LookaheadPaginatorAdminMixin, ReadOnlyAdmin):
    list_display = ("filename", "user_id", "owner", "content_type", "size", "uploaded_at")
    list_filter = ("content_type", ("uploaded_at", admin.DateFieldListFilter))
    search_fields = ("filename", "user_id", "sha256")
    # Newest first by primary key (stored when uploaded/fetched): the _id index, no
    # sort over the collection, and no full count.
    ordering = ("-pk",)
    show_full_result_count = False
    # No join per page ($lookup before the sort): owners come in one read per page.
    list_select_related = ()

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("owner")

    def delete_model(self, request, obj: File) -> None:
        file_delete(file=obj)

    def delete_queryset(self, request, queryset) -> None:
        # The default bulk delete would leave the bytes behind under UPLOAD_DIR.
        for file in queryset:
            file_delete(file=file)
