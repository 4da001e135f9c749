from __future__ import annotations

from django.core.validators import RegexValidator
from rest_framework import serializers

from products.services import MAX_QUERY_LENGTH, MAX_RESULTS_CAP


class ProductSearchParamsSerializer(serializers.Serializer):
    # Blank queries are refused (400): the schema says so with minLength and a pattern.
    q = serializers.CharField(
        min_length=1,
        max_length=MAX_QUERY_LENGTH,
        validators=[RegexValidator(r"\S", "The query must contain a non-space character.")],
        help_text=f"1 to {MAX_QUERY_LENGTH} characters, not only spaces",
    )
    limit = serializers.IntegerField(
        min_value=1,
        max_value=MAX_RESULTS_CAP,
        required=False,
        help_text=f"1 to {MAX_RESULTS_CAP}; default PRODUCT_SEARCH_MAX_RESULTS",
    )


class ProductCardSerializer(serializers.Serializer):
    title = serializers.CharField()
    price = serializers.CharField(allow_null=True, help_text='as the shop shows it, e.g. "$199.99"')
    extracted_price = serializers.FloatField(allow_null=True)
    url = serializers.CharField(allow_null=True)
    image = serializers.CharField(allow_null=True)
    source = serializers.CharField(allow_null=True)
    rating = serializers.FloatField(allow_null=True)
    reviews = serializers.IntegerField(allow_null=True)


class ProductSearchResponseSerializer(serializers.Serializer):
    query = serializers.CharField(help_text="the normalised query that was searched")
    available = serializers.BooleanField(help_text="false when SERPAPI_KEY is not set")
    cached = serializers.BooleanField()
    products = ProductCardSerializer(source="cards", many=True)
    message = serializers.CharField(allow_blank=True)
