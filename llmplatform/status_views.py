"""Platform endpoints: health (public) and status (authenticated)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.providers.registry import available_providers
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
