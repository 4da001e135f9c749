"""Static files under ASGI without Django's "must consume synchronous iterators" warning.

WhiteNoise (6.x) answers with a FileResponse reading its file through a synchronous
iterator. Django's ASGI handler can only stream an asynchronous one, so it drained the
file in a thread and warned on every static file of every page load. Here the same
response streams through an asynchronous iterator reading in a worker thread; under WSGI
(the test client) WhiteNoise's response is left as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import IO, Any

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware

# Bytes read per step; a static file of the chat UI is one or two.
_CHUNK_BYTES = 64 * 1024


async def _read_chunks(file: IO[bytes] | None) -> AsyncIterator[bytes]:
    # No file: a HEAD request or a 304, with an empty body.
    while file is not None and (chunk := await asyncio.to_thread(file.read, _CHUNK_BYTES)):
        yield chunk


class AsyncStreamingWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, streaming its files asynchronously when served over ASGI."""

    @staticmethod
    def serve(static_file: Any, request: HttpRequest) -> HttpResponseBase:
        response = WhiteNoiseMiddleware.serve(static_file, request)
        if isinstance(request, ASGIRequest):
            # The file stays among the response's closers: Django closes it when done.
            response.streaming_content = _read_chunks(response.file_to_stream)
        return response
