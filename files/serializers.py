from __future__ import annotations

from rest_framework import serializers

from files.models import File


class FileUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    user_id = serializers.CharField(max_length=128)


class FileSerializer(serializers.ModelSerializer):
    file_id = serializers.CharField(source="pk", read_only=True)

    class Meta:
        model = File
        fields = ["file_id", "user_id", "filename", "content_type", "size", "sha256", "uploaded_at"]
