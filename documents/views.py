"""Upload (which queues ingestion) and semantic search."""

from __future__ import annotations

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from documents.selectors import SCOPES
from documents.services import document_search, document_upload
from files.serializers import FileSerializer, FileUploadSerializer
from llmplatform.core.schema import error_response

MAX_SEARCH_RESULTS = 50


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


class SearchParamsSerializer(serializers.Serializer):
    q = serializers.CharField(max_length=2000, help_text="what to look for, in plain words")
    user_id = serializers.CharField(max_length=128, trim_whitespace=False)
    scope = serializers.ChoiceField(choices=SCOPES, default="all")
    limit = serializers.IntegerField(min_value=1, max_value=MAX_SEARCH_RESULTS, default=10)


class QuerySearchResultSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["query"])
    score = serializers.FloatField(help_text="cosine similarity")
    snippet = serializers.CharField()
    query_id = serializers.CharField()
    session_id = serializers.CharField()
    timestamp = serializers.DateTimeField()


class DocumentSearchResultSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["document"])
    score = serializers.FloatField(help_text="cosine similarity")
    snippet = serializers.CharField()
    file_id = serializers.CharField()
    title = serializers.CharField()
    page = serializers.IntegerField(allow_null=True)
    url = serializers.CharField()


class SearchResponseSerializer(serializers.Serializer):
    results = PolymorphicProxySerializer(
        component_name="SearchResult",
        serializers={
            "query": QuerySearchResultSerializer,
            "document": DocumentSearchResultSerializer,
        },
        resource_type_field_name="type",
        many=True,
    )


class SearchView(APIView):
    @extend_schema(
        summary="Semantic search over an end user's past queries and ready documents",
        description="Embedding the search text counts against the key's limits like a "
        "question: one request per minute, and its tokens against the token budgets.",
        parameters=[SearchParamsSerializer],
        responses={
            200: SearchResponseSerializer,
            429: error_response(
                429, "Over the key's rate limit (rate_limited) or budget (budget_exceeded)"
            ),
        },
    )
    def get(self, request: Request) -> Response:
        params = SearchParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        results = document_search(owner=request.user, api_key=request.auth, **params.validated_data)
        return Response({"results": results})
