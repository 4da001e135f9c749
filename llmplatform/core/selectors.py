"""Reads about the platform itself: health and status."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from importlib.metadata import version

from django.conf import settings
from django.db import connection
from pymongo.errors import PyMongoError

STARTED_AT = time.time()


@dataclass
class DatabaseHealth:
    connected: bool
    collections: int
    server_version: str | None = None
    error: str | None = None


def database_health() -> DatabaseHealth:
    try:
        connection.ensure_connection()
        client = connection.connection
        server_version = client.server_info().get("version")
        collections = len(connection.database.list_collection_names())
    except PyMongoError as exc:
        # The exception text names hosts, never credentials: pymongo strips them.
        return DatabaseHealth(connected=False, collections=0, error=type(exc).__name__)
    return DatabaseHealth(connected=True, collections=collections, server_version=server_version)


def health_report(*, providers: list[str]) -> tuple[dict[str, object], bool]:
    """The seed's health shape, and whether the platform is healthy."""
    database = database_health()
    healthy = database.connected
    return (
        {
            "status": "healthy" if healthy else "unhealthy",
            "database": {"connected": database.connected, "collections": database.collections},
            "agents": {"initialized": True},
            "providers": {"count": len(providers), "available": providers},
        },
        healthy,
    )


def _redis_status() -> dict[str, object]:
    if not settings.REDIS_URL:
        return {"configured": False, "reachable": None}
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1
        )
        client.ping()
    except redis.RedisError as exc:
        return {"configured": True, "reachable": False, "error": type(exc).__name__}
    return {"configured": True, "reachable": True}


def _celery_workers(redis_reachable: bool) -> list[str] | None:
    """Names of the workers that answered a ping within a second; None when in-process."""
    if not settings.REDIS_URL:
        return None
    if not redis_reachable:
        return []  # pinging through a dead broker would fail after seconds
    from kombu.exceptions import OperationalError

    from llmplatform.celery import app

    try:
        replies = app.control.inspect(timeout=1.0).ping() or {}
    except OperationalError:
        return []
    return sorted(replies)


def _supports_vector_search() -> bool:
    try:
        return bool(connection.features.supports_search)
    except PyMongoError:
        return False


def status_report(*, providers: list[str]) -> dict[str, object]:
    database = database_health()
    redis_status = _redis_status()
    workers = _celery_workers(redis_status.get("reachable") is True)
    return {
        "app": {
            "name": settings.APP_NAME,
            "version": settings.APP_VERSION,
            "environment": settings.ENVIRONMENT,
            "uptime_seconds": round(time.time() - STARTED_AT, 1),
        },
        "versions": {
            "python": platform.python_version(),
            "django": version("django"),
            "djangorestframework": version("djangorestframework"),
            "django-mongodb-backend": version("django-mongodb-backend"),
            "channels": version("channels"),
            "celery": version("celery"),
        },
        "database": {
            "connected": database.connected,
            "collections": database.collections,
            "server_version": database.server_version,
            "embedded": settings.MONGODB_EMBEDDED,
            "name": settings.MONGO_DB,
            "supports_vector_search": database.connected and _supports_vector_search(),
        },
        "redis": redis_status,
        "celery": {
            "mode": "in-process" if workers is None else "workers",
            "workers": workers or [],
        },
        "providers": {"available": providers},
    }
