"""File upload, listing and deletion (``/api/v1/files/``)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from files.selectors import file_get, file_list
from files.serializers import FileListParamsSerializer, FileSerializer, FileUploadSerializer
from files.services import file_delete, file_upload
from llmplatform.core.pagination import NewestFirstCursorPagination
from llmplatform.core.schema import paginated


class FileUploadView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        summary="Upload a file (images for vision, text, PDF); limit MAX_FILE_SIZE bytes",
        request={"multipart/form-data": FileUploadSerializer},
        responses={201: FileSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = FileUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        stored = file_upload(
            owner=request.user,
            user_id=serializer.validated_data["user_id"],
            upload=serializer.validated_data["file"],
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
    @extend_schema(summary="A file's metadata", responses={200: FileSerializer})
    def get(self, request: Request, file_id: str) -> Response:
        return Response(FileSerializer(file_get(owner=request.user, file_id=file_id)).data)

    @extend_schema(summary="Delete a file", responses={204: None})
    def delete(self, request: Request, file_id: str) -> Response:
        file_delete(file=file_get(owner=request.user, file_id=file_id))
        return Response(status=204)
