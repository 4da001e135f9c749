from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from files.models import File
from llmplatform.core.contract import MAX_ID_LENGTH
from llmplatform.core.pagination import CursorPageParamsSerializer


# Django's multipart parser drops a part with no bytes, so an empty file is "no file".
@extend_schema_field({"type": "string", "format": "binary", "minLength": 1})
class NonEmptyFileField(serializers.FileField):
    pass


class FileUploadSerializer(serializers.Serializer):
    file = NonEmptyFileField()
    user_id = serializers.CharField(max_length=MAX_ID_LENGTH)


class IngestionErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class IngestionSerializer(serializers.Serializer):
    """Where a document's ingestion stands (images have none: ``ingestion`` is null)."""

    status = serializers.ChoiceField(choices=["pending", "processing", "ready", "failed"])
    pages = serializers.IntegerField(
        allow_null=True, help_text="page count for paginated formats (PDF), else null"
    )
    chunks = serializers.IntegerField(min_value=0)
    progress = serializers.FloatField(min_value=0.0, max_value=1.0)
    error = IngestionErrorSerializer(allow_null=True)


def ingestion_of(file: File) -> dict | None:
    if not file.is_document:
        return None
    return {
        "status": file.ingestion_status,
        "pages": file.ingestion_pages,
        "chunks": file.ingestion_chunks,
        "progress": round(file.ingestion_progress, 4),
        "error": file.ingestion_error,
    }


class FileSerializer(serializers.ModelSerializer):
    file_id = serializers.CharField(source="pk", read_only=True)
    ingestion = serializers.SerializerMethodField()
    content_url = serializers.SerializerMethodField()

    class Meta:
        model = File
        fields = [
            "file_id",
            "user_id",
            "filename",
            "content_type",
            "size",
            "sha256",
            "uploaded_at",
            "ingestion",
            "content_url",
        ]

    @extend_schema_field(IngestionSerializer(allow_null=True))
    def get_ingestion(self, file: File) -> dict | None:
        return ingestion_of(file)

    def get_content_url(self, file: File) -> str:
        return f"/api/v1/files/{file.pk}/content"


class FileListParamsSerializer(CursorPageParamsSerializer):
    user_id = serializers.CharField(
        max_length=MAX_ID_LENGTH,
        required=False,
        trim_whitespace=False,
        help_text="only these files",
    )
