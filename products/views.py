"""Product search (``/api/v1/products/search``): the ProductAgent's search, exposed."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from llmplatform.core.schema import error_response
from products.serializers import ProductSearchParamsSerializer, ProductSearchResponseSerializer
from products.services import product_search


class ProductSearchView(APIView):
    @extend_schema(
        summary="Search products (SerpAPI Google Shopping, cached)",
        parameters=[ProductSearchParamsSerializer],
        responses={
            200: ProductSearchResponseSerializer,
            400: error_response(400, "q missing, empty or too long; limit out of range"),
            502: error_response(502, "SerpAPI failed (code product_search_failed)"),
        },
    )
    def get(self, request: Request) -> Response:
        params = ProductSearchParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        result = product_search(
            query=params.validated_data["q"], max_results=params.validated_data.get("limit")
        )
        return Response(ProductSearchResponseSerializer(result).data)
