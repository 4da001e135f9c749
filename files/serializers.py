from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from files.models import File
from llmplatform.core.pagination import CursorPageParamsSerializer


# Django's multipart parser drops a part with no bytes, so an empty file is "no file".
@extend_schema_field({"type": "string", "format": "binary", "minLength": 1})
class NonEmptyFileField(serializers.FileField):
    pass


class FileUploadSerializer(serializers.Serializer):
    file = NonEmptyFileField()
    user_id = serializers.CharField(max_length=128)


class FileSerializer(serializers.ModelSerializer):
    file_id = serializers.CharField(source="pk", read_only=True)

    class Meta:
        model = File
        fields = ["file_id", "user_id", "filename", "content_type", "size", "sha256", "uploaded_at"]


class FileListParamsSerializer(CursorPageParamsSerializer):
    user_id = serializers.CharField(
        max_length=128, required=False, trim_whitespace=False, help_text="only these files"
    )
