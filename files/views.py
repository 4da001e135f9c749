"""Upload, listing, metadata, download and deletion of files (``/api/v1/files/``)."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from files.selectors import file_get, file_list
from files.serializers import FileListParamsSerializer, FileSerializer, FileUploadSerializer
from files.services import document_upload, file_delete, file_download_headers, file_open
from llmplatform.core.pagination import NewestFirstCursorPagination
from llmplatform.core.schema import error_response, paginated


class FileUploadView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        summary="Upload a file: images for vision; PDF, text, Markdown, CSV, JSON, HTML and "
        "DOCX documents are ingested in the background for questions (limit MAX_FILE_SIZE bytes)",
        request={"multipart/form-data": FileUploadSerializer},
        responses={
            201: FileSerializer,
            413: error_response(
                413,
                "File over MAX_FILE_SIZE (file_too_large), or storing it would exceed the "
                "storage quota (storage_quota_exceeded; used_bytes and limit_bytes in details)",
            ),
            429: error_response(
                429,
                "A document whose ingestion would be charged to a used-up token or USD "
                "budget (budget_exceeded; Retry-After)",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = FileUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        stored = document_upload(
            owner=request.user,
            user_id=serializer.validated_data["user_id"],
            upload=serializer.validated_data["file"],
            api_key=request.auth,
        )
        return Response(FileSerializer(stored).data, status=201)


class FileListView(APIView):
    @extend_schema(
        summary="List your files, newest first (cursor pagination)",
        operation_id="files_list",
        parameters=[FileListParamsSerializer],
        responses={200: paginated(FileSerializer, name="PaginatedFileList")},
    )
    def get(self, request: Request) -> Response:
        # The paginator ignores a bad limit; a client asking for limit=abc gets a 400.
        params = FileListParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        paginator = NewestFirstCursorPagination(ordering="-uploaded_at")
        page = paginator.paginate_queryset(
            file_list(owner=request.user, user_id=params.validated_data.get("user_id")),
            request,
            view=self,
        )
        return paginator.get_paginated_response(FileSerializer(page, many=True).data)


class FileDetailView(APIView):
    @extend_schema(
        summary="A file's metadata; documents include their ingestion status",
        responses={200: FileSerializer},
    )
    def get(self, request: Request, file_id: str) -> Response:
        return Response(FileSerializer(file_get(owner=request.user, file_id=file_id)).data)

    @extend_schema(
        summary="Delete a file, with a document's passages and vectors",
        responses={204: None},
    )
    def delete(self, request: Request, file_id: str) -> Response:
        file_delete(file=file_get(owner=request.user, file_id=file_id))
        return Response(status=204)


class FileContentView(APIView):
    def perform_content_negotiation(self, request: Request, force: bool = False):
        # The body is the file itself, whatever the client's Accept says; only errors
        # are rendered (as JSON).
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        summary="Download a file's original bytes (inline for images and PDF, else attachment)",
        responses={
            (200, "*/*"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The bytes as uploaded, with their checked Content-Type, "
                "X-Content-Type-Options: nosniff and a sandboxing Content-Security-Policy",
            )
        },
    )
    def get(self, request: Request, file_id: str) -> FileResponse:
        file = file_get(owner=request.user, file_id=file_id)
        response = FileResponse(file_open(file=file))
        for header, value in file_download_headers(file=file).items():
            response[header] = value
        return response
