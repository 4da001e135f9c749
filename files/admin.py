"""Operator console: uploaded files and their document ingestion.

Metadata is read-only; operators can re-ingest documents (after a failure, or to
re-embed with a new model) and delete files (with their bytes, passages and vectors).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.db.models import QuerySet
from django.http import HttpRequest

from files.models import File
from files.services import document_reingest, file_delete
from llmplatform.admin_site import ReadOnlyAdmin
from llmplatform.core.pagination import LookaheadPaginatorAdminMixin


@admin.register(File)
class FileAdmin(LookaheadPaginatorAdminMixin, ReadOnlyAdmin):
    list_display = (
        "filename",
        "user_id",
        "owner",
        "content_type",
        "size",
        "ingestion_status",
        "ingestion_pages",
        "ingestion_chunks",
        "ingestion_error_message",
        "uploaded_at",
    )
    list_filter = (
        "ingestion_status",
        "content_type",
        ("uploaded_at", admin.DateFieldListFilter),
    )
    search_fields = ("filename", "user_id", "sha256")
    # Newest first by primary key (stored when uploaded/fetched): the _id index, no
    # sort over the collection, and no full count.
    ordering = ("-pk",)
    show_full_result_count = False
    # No join per page ($lookup before the sort): owners come in one read per page.
    list_select_related = ()
    actions = ["reingest", "delete_with_passages"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("owner")

    @admin.display(description="ingestion error")
    def ingestion_error_message(self, file: File) -> str:
        return (file.ingestion_error or {}).get("message", "")

    @admin.action(description="Re-ingest selected documents (extract, chunk and embed again)")
    def reingest(self, request: HttpRequest, queryset: QuerySet[File]) -> None:
        documents = [file for file in queryset if file.is_document]
        for file in documents:
            document_reingest(file=file)
        skipped = queryset.count() - len(documents)
        self.message_user(
            request,
            f"{len(documents)} document(s) queued for ingestion"
            + (f"; {skipped} image(s) skipped (images are not ingested)" if skipped else ""),
            messages.SUCCESS,
        )

    @admin.action(
        description="Delete selected files with their passages and vectors",
        permissions=["delete"],
    )
    def delete_with_passages(self, request: HttpRequest, queryset: QuerySet[File]) -> None:
        count = 0
        for file in queryset:
            file_delete(file=file)
            count += 1
        self.message_user(request, f"{count} file(s) deleted", messages.SUCCESS)

    def get_actions(self, request: HttpRequest, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        # Django's bulk delete would leave the bytes and the passages behind.
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request, obj: File) -> None:
        file_delete(file=obj)

    def delete_queryset(self, request, queryset) -> None:
        for file in queryset:
            file_delete(file=file)
