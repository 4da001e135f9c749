from __future__ import annotations

from rest_framework import serializers

from files.models import File
from llmplatform.core.pagination import NewestFirstCursorPagination


class FileUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    user_id = serializers.CharField(max_length=128)


class FileSerializer(serializers.ModelSerializer):
    file_id = serializers.CharField(source="pk", read_only=True)

    class Meta:
        model = File
        fields = ["file_id", "user_id", "filename", "content_type", "size", "sha256", "uploaded_at"]


class FileListParamsSerializer(serializers.Serializer):
    user_id = serializers.CharField(max_length=128, required=False, help_text="only these files")
    cursor = serializers.CharField(required=False, help_text="from the next/previous link")
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=NewestFirstCursorPagination.max_page_size,
        help_text=f"page size, default {NewestFirstCursorPagination.page_size}",
    )
