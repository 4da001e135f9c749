"""Product search (``/api/v1/products/search``): the ProductAgent's search, exposed."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from products.serializers import ProductSearchParamsSerializer, ProductSearchResponseSerializer
from products.services import MAX_QUERY_LENGTH, MAX_RESULTS_CAP, product_search


class ProductSearchView(APIView):
    @extend_schema(
        summary="Search products (SerpAPI Google Shopping, cached)",
        parameters=[
            OpenApiParameter(
                "q", str, required=True, description=f"1 to {MAX_QUERY_LENGTH} characters"
            ),
            OpenApiParameter(
                "limit",
                int,
                description=f"1 to {MAX_RESULTS_CAP}; default PRODUCT_SEARCH_MAX_RESULTS",
            ),
        ],
        responses={
            200: ProductSearchResponseSerializer,
            400: OpenApiResponse(description="q missing, empty or too long; limit out of range"),
            502: OpenApiResponse(description="SerpAPI failed (code product_search_failed)"),
        },
    )
    def get(self, request: Request) -> Response:
        params = ProductSearchParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        result = product_search(
            query=params.validated_data["q"], max_results=params.validated_data.get("limit")
        )
        return Response(ProductSearchResponseSerializer(result).data)
