"""``GET /api/v1/search``: semantic search over an end user's past queries and documents."""

from __future__ import annotations

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from llmplatform.core.contract import MAX_ID_LENGTH
from llmplatform.core.schema import error_response
from search.services import SCOPES, semantic_search

MAX_SEARCH_RESULTS = 50


class QueryStringChoiceField(serializers.ChoiceField):
    """A choice in the query string: an empty value (``?scope=``) is a wrong choice (400),
    not "not given" as DRF reads empty HTML form fields (the schema's enum has no "")."""

    def get_value(self, dictionary):
        if dictionary.get(self.field_name) == "":
            return ""
        return super().get_value(dictionary)


class SearchParamsSerializer(serializers.Serializer):
    q = serializers.CharField(max_length=2000, help_text="what to look for, in plain words")
    user_id = serializers.CharField(max_length=MAX_ID_LENGTH, trim_whitespace=False)
    scope = QueryStringChoiceField(choices=SCOPES, default="all")
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
        results = semantic_search(owner=request.user, api_key=request.auth, **params.validated_data)
        return Response({"results": results})
