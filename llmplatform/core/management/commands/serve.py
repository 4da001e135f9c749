"""python manage.py serve: migrate and serve everything with uvicorn on HOST:PORT."""

from __future__ import annotations

import contextlib
import secrets
import socket
from argparse import ArgumentParser
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from uvicorn import Config, Server

from llmplatform.core.dispatch import where_work_runs
from llmplatform.core.first_run import FirstRunCredentials, first_run_box, first_run_file_write
from llmplatform.core.server_protocol import ServerLimits, guarded_protocol
from llmplatform.core.services import api_key_create
from llmplatform.embedded.attach import attach_embedded_database


def server_limits() -> ServerLimits:
    return ServerLimits(
        header_timeout_s=settings.SERVER_HEADER_TIMEOUT_S,
        body_timeout_s=settings.SERVER_BODY_TIMEOUT_S,
        keep_alive_s=settings.SERVER_KEEP_ALIVE_S,
        max_header_bytes=settings.SERVER_MAX_HEADER_BYTES,
    )


def uvicorn_options(*, host: str, port: int) -> dict[str, Any]:
    """What ``serve`` gives ``uvicorn.run`` (the tests start the same server with it).

    uvicorn (uvloop + httptools) measured fastest of daphne, uvicorn and granian with every
    streaming test passing (bench/results/sse_streams.md); daphne still serves `runserver`.
    No proxy headers: uvicorn would believe X-Forwarded-For from 127.0.0.1. Client
    addresses are resolved by llmplatform.core.client_address (TRUSTED_PROXIES). Channels'
    router has no lifespan handler. httptools with our read limits (server_protocol).
    """
    limits = server_limits()
    return {
        "app": "config.asgi:application",
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": guarded_protocol(limits),
        "ws": "websockets-sansio",
        "lifespan": "off",
        "proxy_headers": False,
        "timeout_keep_alive": limits.keep_alive_s,
        "access_log": settings.DEBUG,
        "log_config": None,  # Django's LOGGING stays in charge
    }


class Command(BaseCommand):
    help = (
        "Apply migrations, then serve HTTP, SSE and websockets with uvicorn on HOST:PORT "
        "(--host/--port, or the HOST and PORT environment variables; Ctrl-C stops). "
        "Requests that arrive too slowly or too large are closed: see SERVER_HEADER_TIMEOUT_S, "
        "SERVER_BODY_TIMEOUT_S, SERVER_MAX_HEADER_BYTES and SERVER_KEEP_ALIVE_S."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--host",
            default=None,
            help="Address to listen on (default: the HOST environment variable, now "
            f"{settings.HOST}; 0.0.0.0 for every interface).",
        )
        parser.add_argument(
            "--port",
            type=int,
            default=None,
            help="TCP port to listen on (default: the PORT environment variable, now "
            f"{settings.PORT}).",
        )

    def handle(self, *args: object, **options: Any) -> None:
        host: str = options["host"] or settings.HOST
        port: int = options["port"] or settings.PORT
        # Joins (or starts) the embedded database; it stops once no process uses it.
        attach_embedded_database()
        call_command("migrate", interactive=False, verbosity=0)
        base = f"http://{host}:{port}"
        credentials = self._first_run_account(base_url=base)
        database = "embedded SecantusDB (var/mongo)" if settings.MONGODB_EMBEDDED else "MONGODB_URI"
        background = where_work_runs()
        banner = (
            f"\n{settings.APP_NAME} {settings.APP_VERSION} [{settings.ENVIRONMENT}]\n"
            f"  database:    {database}\n"
            f"  background:  {background}\n"
            f"  chat UI:     {base}/  (log in with a Django account)\n"
            f"  API docs:    {base}/docs  (ReDoc {base}/redoc, OpenAPI {base}/openapi.json)\n"
            f"  admin:       {base}/admin/\n"
            f"  health:      {base}/api/v1/health\n"
            "Press Ctrl-C to stop.\n"
        )
        if credentials is not None:
            banner += f"\n{credentials}\n"

        def announce() -> None:
            self.stdout.write(banner)
            self.stdout.flush()

        server = _AnnouncingServer(Config(**uvicorn_options(host=host, port=port)), announce)
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
        if not server.started:
            if credentials is not None:  # still shown: they were made, and only now
                self.stdout.write(f"\n{credentials}\n")
            raise CommandError(f"The server did not start on {host}:{port}: see the log above.")

    def _first_run_account(self, *, base_url: str) -> str | None:
        """On a fresh development database, make an admin and a key so everything is usable.

        Returns the box showing their secrets (also written to FIRST_RUN_FILE), or None.
        """
        user_model = get_user_model()
        if settings.ENVIRONMENT != "development" or user_model.objects.exists():
            return None
        password = secrets.token_urlsafe(12)
        user = user_model.objects.create_superuser(username="admin", password=password)
        _, raw_key = api_key_create(owner=user, name="first run")
        credentials = FirstRunCredentials(username="admin", password=password, api_key=raw_key)
        file = first_run_file_write(credentials=credentials, base_url=base_url)
        return first_run_box(credentials=credentials, base_url=base_url, file=file)


class _AnnouncingServer(Server):
    """uvicorn's server, calling ``announce`` once it listens: after its start-up logging,
    so the banner and the first-run credentials are the last lines on the terminal."""

    def __init__(self, config: Config, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._announce()
