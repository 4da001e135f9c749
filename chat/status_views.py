"""Platform endpoints: health (public), status and the API key's usage (authenticated)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.providers.registry import available_providers
from files.charges import Payer
from files.storage_quota import storage_usage
from llmplatform.core.contract import MAX_ID_LENGTH
from llmplatform.core.quotas import quota_windows, rate_limit_headers
from llmplatform.core.selectors import health_report, status_report

HealthSerializer = inline_serializer(
    "Health",
    {
        "status": serializers.ChoiceField(choices=["healthy", "unhealthy"]),
        "database": serializers.DictField(),
        "agents": serializers.DictField(),
        "providers": serializers.DictField(),
    },
)


class HealthView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Health check (no API key needed)",
        responses={200: HealthSerializer, 503: HealthSerializer},
        auth=[],
    )
    def get(self, request: Request) -> Response:
        report, healthy = health_report(providers=available_providers())
        return Response(report, status=200 if healthy else 503)


class StatusView(APIView):
    @extend_schema(
        summary="Detailed status: versions, uptime, database, Redis, Celery, providers",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        return Response(status_report(providers=available_providers()))


class UsageParamsSerializer(serializers.Serializer):
    user_id = serializers.CharField(
        max_length=MAX_ID_LENGTH,
        required=False,
        trim_whitespace=False,
        help_text="also this end user's windows (where end-user limits are set)",
    )


class WindowSerializer(serializers.Serializer):
    limit = serializers.FloatField(allow_null=True, help_text="null: no limit")
    used = serializers.FloatField(help_text="includes the reservations of running questions")
    remaining = serializers.FloatField(allow_null=True)
    resets_at = serializers.DateTimeField()
    resets_in_s = serializers.IntegerField()


class StorageSerializer(serializers.Serializer):
    limit = serializers.FloatField(allow_null=True, help_text="MB; null: no limit")
    used = serializers.FloatField(
        help_text="MB: the owner's uploads plus their documents' stored passages"
    )
    remaining = serializers.FloatField(allow_null=True, help_text="MB")


UsageSerializer = inline_serializer(
    "KeyUsage",
    {
        "key": inline_serializer(
            "KeyUsageKey", {"name": serializers.CharField(), "prefix": serializers.CharField()}
        ),
        "limits": serializers.DictField(
            child=WindowSerializer(),
            help_text="requests_per_minute, tokens_per_day, usd_per_month (embeddings, "
            "search and document ingestion count here as questions do)",
        ),
        "storage_mb": StorageSerializer(
            help_text="the storage quota (storage_mb of the key, else DEFAULT_STORAGE_MB): "
            "counted over everything the key's owner stores; deleting files frees it"
        ),
        "user": inline_serializer(
            "KeyUsageEndUser",
            {
                "user_id": serializers.CharField(),
                "limits": serializers.DictField(child=WindowSerializer()),
            },
            allow_null=True,
        ),
    },
)


class UsageView(APIView):
    @extend_schema(
        summary="This API key's usage and what is left of its limits in the current windows",
        parameters=[UsageParamsSerializer],
        responses={200: UsageSerializer},
    )
    def get(self, request: Request) -> Response:
        params = UsageParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        user_id = params.validated_data.get("user_id")
        windows = quota_windows(api_key=request.auth, user_id=user_id)

        def shown(scope: str) -> dict[str, dict]:
            return {w.name: w.as_dict() for w in windows if w.scope == scope}

        body = {
            "key": {"name": request.auth.name, "prefix": request.auth.prefix},
            "limits": shown("key"),
            "storage_mb": storage_usage(
                owner_id=request.user.pk, payer=Payer(api_key=request.auth)
            ).as_dict(),
            "user": None if user_id is None else {"user_id": user_id, "limits": shown("user")},
        }
        return Response(body, headers=rate_limit_headers(api_key=request.auth, user_id=user_id))
