"""ASGI entry point: Django for HTTP, Channels consumers for SSE streams and websockets."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmplatform.settings")
django_asgi_app = get_asgi_application()

# Imported after Django is set up: consumers import models.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from llmplatform.core.dispatch import start_background_work  # noqa: E402
from queries.consumers import ChatConsumer, QueryResumeConsumer, QueryStreamConsumer  # noqa: E402

# Without Celery (the embedded default) this process also runs the periodic work that
# beat runs otherwise: the sweeper of runs whose worker died, the analytics rollups.
start_background_work()

application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [
                path("api/v1/query/stream", QueryStreamConsumer.as_asgi()),
                path("api/v1/query/<str:query_id>/stream", QueryResumeConsumer.as_asgi()),
                re_path(r"", django_asgi_app),
            ]
        ),
        # Origins are checked by ChatConsumer itself: API-key clients may send none.
        "websocket": AuthMiddlewareStack(URLRouter([path("ws/chat/", ChatConsumer.as_asgi())])),
    }
)
