"""Streaming answers: SSE (``/api/v1/query/stream``, ``/api/v1/query/{id}/stream``) and the
chat websocket (``/ws/chat/``). Both follow the query's event log, so a client that
reconnects with its last event id gets every event it missed, none twice, and closing a
connection never stops the generation (only an explicit cancel does).
"""

from __future__ import annotations

import asyncio
import json
import logging
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs

from channels.generic.http import AsyncHttpConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from rest_framework.exceptions import ValidationError

from llmplatform.core import metrics, tracing
from llmplatform.core.auth import api_key_for_scope
from llmplatform.core.bridge import to_thread
from llmplatform.core.errors import ApplicationError, internal_error
from llmplatform.core.exception_handler import application_exception_handler
from llmplatform.core.json_body import parse_json_body
from llmplatform.core.middleware import request_id_from
from llmplatform.core.models import ApiKey
from llmplatform.core.origins import origin_allowed
from llmplatform.core.quotas import rate_limit_headers, refusal_headers
from llmplatform.core.security_headers import sse_security_headers
from llmplatform.core.stream_access import (
    CLOSE_NOT_AUTHENTICATED,
    STREAM_ACCESS_CHECK_S,
    StreamAccess,
)
from queries.question import QuestionParams
from queries.selectors import query_get
from queries.serializers import QueryRequestSerializer
from queries.start import query_start
from queries.streams import follow_query, query_cancel, resume_after, resume_point

logger = logging.getLogger(__name__)


def _validation_error(exc: ValidationError) -> ApplicationError:
    response = application_exception_handler(exc, {})
    error = response.data["error"]
    return ApplicationError(error["message"], code=error["code"], extra=error["details"])


TRACE_CONTEXT_KEYS = ("traceparent", "tracestate")


def _trace_headers(scope: dict[str, Any]) -> dict[str, str]:
    """The client's W3C trace context (``traceparent``, ``tracestate``) from a request's or
    a websocket handshake's headers, if it sent one."""
    found = {
        key.decode("latin-1"): value.decode("latin-1")
        for key, value in scope.get("headers", [])
        if key.decode("latin-1") in TRACE_CONTEXT_KEYS
    }
    return {name: value for name, value in found.items() if value}


def _message_trace_context(content: dict[str, Any]) -> dict[str, str]:
    """The W3C trace context a websocket ``query`` message carries (its ``traceparent``
    and ``tracestate`` fields): a browser cannot set a handshake's headers."""
    carrier = {key: content[key] for key in TRACE_CONTEXT_KEYS if content.get(key) is not None}
    for key, value in carrier.items():
        if not isinstance(value, str):
            raise ApplicationError(
                f"{key} must be a string (W3C trace context).",
                code="validation_error",
                extra={key: ["Not a string."]},
            )
    return carrier


def _query_params(data: Any) -> QuestionParams:
    serializer = QueryRequestSerializer(data=data)
    try:
        serializer.is_valid(raise_exception=True)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    return serializer.question()


class _SseConsumer(AsyncHttpConsumer):
    """Shared SSE plumbing: auth, error responses, frames, heartbeats, disconnects."""

    handler: asyncio.Task[None] | None = None
    rejected = False
    streaming = False  # headers sent: errors go out as events

    async def http_request(self, message: dict[str, Any]) -> None:
        # Unlike AsyncHttpConsumer, stream in a task: the consumer keeps receiving, so a
        # client that goes away (http.disconnect) stops the stream at once.
        if self.rejected:
            return  # the rest of a body already refused
        self.body.append(message.get("body", b""))
        if sum(len(part) for part in self.body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            self.rejected = True
            self.body.clear()
            self.handler = asyncio.create_task(
                self._send_error(
                    ApplicationError(
                        "The request body is larger than MAX_REQUEST_BODY "
                        f"({settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes).",
                        code="payload_too_large",
                        status=413,
                    )
                )
            )
            return
        if not message.get("more_body"):
            self.handler = asyncio.create_task(self.handle(b"".join(self.body)))

    def _header(self, name: bytes) -> str | None:
        for key, value in self.scope.get("headers", []):
            if key == name:
                return value.decode("latin-1")
        return None

    async def _api_key(self) -> ApiKey:
        api_key = await to_thread(api_key_for_scope)(self.scope)
        if api_key is None:
            raise ApplicationError(
                "Send `Authorization: Bearer <key>` with an active API key.",
                code="not_authenticated",
                status=401,
            )
        return api_key

    async def _send_error(self, error: ApplicationError) -> None:
        headers = [
            (b"Content-Type", b"application/json"),
            *self._common_headers(),
            *((name.encode(), value.encode()) for name, value in refusal_headers(error).items()),
        ]
        await self.send_response(
            error.status, json.dumps(error.as_envelope()).encode(), headers=headers
        )

    def _common_headers(self) -> list[tuple[bytes, bytes]]:
        # Django's middleware never sees these responses: its headers are added here.
        return [(b"X-Request-ID", self._request_id.encode()), *sse_security_headers()]

    @cached_property
    def _request_id(self) -> str:
        return request_id_from(self._header(b"x-request-id"))

    async def _start_stream(
        self,
        query_id: str,
        *,
        after: str | None,
        access: StreamAccess,
        stored: Any = None,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        """Follow the query's log as SSE until ``done``; a revoked key ends it with an
        ``error`` event and ``done`` (raised to ``handle``, which sends them)."""
        self.streaming = True
        await self.send_headers(
            status=200,
            headers=[
                (b"Content-Type", b"text/event-stream; charset=utf-8"),
                (b"Cache-Control", b"no-cache"),
                (b"X-Accel-Buffering", b"no"),
                *self._common_headers(),
                *((name.encode(), value.encode()) for name, value in (extra_headers or {}).items()),
            ],
        )
        # daphne sends the headers with the first body bytes: let the client know at once.
        await self.send_body(b": stream open\n\n", more_body=True)
        with metrics.stream_active("sse"):
            events = follow_query(query_id, after=after, stored=stored, access=access)
            async for entry_id, event in events:
                if entry_id is None:
                    await self.send_body(b": keep-alive\n\n", more_body=True)
                    continue
                frame = f"id: {entry_id}\ndata: {json.dumps(event)}\n\n"
                await self.send_body(frame.encode(), more_body=True)
        await self.send_body(b"", more_body=False)

    async def disconnect(self) -> None:
        # The client left (or the response ended): stop following. Generation goes on.
        if self.handler is not None:
            self.handler.cancel()

    async def handle(self, body: bytes) -> None:
        try:
            await self.start(body)
        except ApplicationError as error:
            await self._fail(error)
        except asyncio.CancelledError:
            raise  # the client went away
        except Exception:  # the connection's boundary: never a silent hang
            logger.exception(
                "SSE request failed: %s (X-Request-ID %s)", self.path, self._request_id
            )
            await self._fail(internal_error())

    async def _fail(self, error: ApplicationError) -> None:
        """The error as a response, or as the stream's last events once it has begun."""
        if not self.streaming:
            await self._send_error(error)
            return
        for event in ({"type": "error", **error.as_envelope()}, {"type": "done"}):
            await self.send_body(f"data: {json.dumps(event)}\n\n".encode(), more_body=True)
        await self.send_body(b"", more_body=False)

    @property
    def path(self) -> str:
        return self.scope.get("path", "")

    async def start(self, body: bytes) -> None:
        raise NotImplementedError


def _started_with_limits(*, api_key: ApiKey, params: QuestionParams) -> tuple[Any, dict]:
    """``query_start``, then the ``RateLimit-*`` headers, in one hop to a thread: each hop
    back to the event loop waits for the GIL, which the run just started holds."""
    query = query_start(owner=api_key.owner, params=params, api_key=api_key)
    return query, rate_limit_headers(api_key=api_key, user_id=params.user_id)


class QueryStreamConsumer(_SseConsumer):
    """``POST /api/v1/query/stream``: the same request as ``/api/v1/query/``, as SSE."""

    async def start(self, body: bytes) -> None:
        if self.scope["method"] != "POST":
            raise ApplicationError("Use POST.", code="method_not_allowed", status=405)
        api_key = await self._api_key()
        params = _query_params(parse_json_body(body or b"{}"))
        # Django's middleware never sees this request: its traceparent is honoured here.
        with tracing.continued(_trace_headers(self.scope)):
            query, limits = await to_thread(_started_with_limits)(api_key=api_key, params=params)
        await self._start_stream(
            str(query.pk),
            after=None,
            access=StreamAccess.for_api_key(api_key),
            extra_headers=limits,
        )


class QueryResumeConsumer(_SseConsumer):
    """``GET /api/v1/query/{id}/stream``: replay after ``Last-Event-ID``, then follow."""

    async def start(self, body: bytes) -> None:
        if self.scope["method"] != "GET":
            raise ApplicationError("Use GET.", code="method_not_allowed", status=405)
        api_key = await self._api_key()
        query_id = self.scope["url_route"]["kwargs"]["query_id"]
        query = await to_thread(query_get)(owner=api_key.owner, query_id=query_id)
        params = parse_qs(self.scope.get("query_string", b"").decode())
        after = await resume_point(
            query=query,
            last_event_id=(
                self._header(b"last-event-id") or (params.get("last_event_id") or [None])[-1]
            ),
        )
        await self._start_stream(
            str(query.pk), after=after, access=StreamAccess.for_api_key(api_key), stored=query
        )


class ChatConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/chat/``: ``query``, ``cancel`` and ``resume`` messages; events as in SSE.

    Authenticated by API key (``Authorization`` header or ``api_key`` query parameter) or by
    the Django login session. A browser's Origin (scheme, host and port) must be the site's
    own or one of CSRF_TRUSTED_ORIGINS; a cookie-authenticated connection must come from a
    browser (Origin set). The credential is checked again before each message and every
    STREAM_ACCESS_CHECK_S: once the key is revoked or the session ended, the socket gets an
    ``error`` event and is closed with 4401.
    """

    ended = False  # closed by us: nothing more is sent
    watcher: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.followers: dict[str, asyncio.Task[None]] = {}
        origin = dict(self.scope.get("headers", [])).get(b"origin")
        try:
            self.api_key = await to_thread(api_key_for_scope)(self.scope, allow_query_param=True)
        except ApplicationError:  # too many wrong keys from this address
            await self.close(code=4429)
            return
        owner = None if self.api_key is None else self.api_key.owner
        # A login cookie is sent by the browser with any page's request, so it counts only
        # with an Origin that is then checked (cross-site websocket hijacking).
        if owner is None and origin is not None:
            user = self.scope.get("user")
            owner = user if user is not None and user.is_authenticated else None
        if origin is not None and not origin_allowed(origin.decode("latin-1"), scope=self.scope):
            await self.close(code=4403)
            return
        if owner is None:
            await self.close(code=CLOSE_NOT_AUTHENTICATED)
            return
        self.owner = owner
        if self.api_key is not None:
            self.access = StreamAccess.for_api_key(self.api_key)
        else:
            self.access = StreamAccess.for_session(
                session_key=self.scope["session"].session_key, user_id=owner.pk
            )
        await self.accept()
        metrics.stream_opened("websocket")
        self.stream_counted = True
        self.watcher = asyncio.create_task(self._watch_access())

    async def disconnect(self, code: int) -> None:
        if getattr(self, "stream_counted", False):
            metrics.stream_closed("websocket")
        if self.watcher is not None:
            self.watcher.cancel()
        for task in getattr(self, "followers", {}).values():
            task.cancel()

    async def _watch_access(self) -> None:
        """Close the socket within STREAM_ACCESS_CHECK_S (+ the credential cache) of a
        revocation or logout, even when the client sends nothing."""
        while not self.ended:
            await asyncio.sleep(STREAM_ACCESS_CHECK_S)
            try:
                refusal = await self.access.refusal()
            except Exception:  # the task's boundary: a failed read is retried next tick
                logger.exception("websocket credential check failed")
                continue
            if refusal is not None:
                await self._end(refusal)

    async def _end(self, refusal: ApplicationError) -> None:
        """The credential no longer holds: stop following, say why, close with 4401."""
        if self.ended:
            return
        self.ended = True
        for task in self.followers.values():
            task.cancel()
        await self._send({"type": "error", **refusal.as_envelope()})
        try:
            await self.close(code=CLOSE_NOT_AUTHENTICATED)
        except OSError:  # the client left first
            logger.debug("websocket client left before its 4401 close")

    async def _send(self, event: dict[str, Any]) -> bool:
        """Send one event; False when the client has already left (not an error: a tab
        closed mid-answer; the answer goes on and can be resumed)."""
        try:
            await self.send_json(event)
        except OSError:  # the server's "client disconnected" (uvicorn's ClientDisconnected)
            logger.debug(
                "websocket client left before a %s event (query %s)",
                event.get("type"),
                event.get("query_id"),
            )
            return False
        return True

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        try:
            if not isinstance(content, dict):
                raise ApplicationError("Send a JSON object.", code="malformed_request")
            kind = content.get("type")
            if kind == "query":
                await self._query(content)
            elif kind == "cancel":
                await self._cancel(content)
            elif kind == "resume":
                await self._resume(content)
            else:
                raise ApplicationError(
                    "type must be one of: query, cancel, resume.", code="unknown_message_type"
                )
        except ApplicationError as error:
            await self._send({"type": "error", **error.as_envelope()})
        except Exception:  # the message's boundary: answer, log, keep the socket
            logger.exception("websocket message failed")
            await self._send({"type": "error", **internal_error().as_envelope()})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.ended:
            return
        # Before any work (a question is a vendor call): the key or session, read fresh.
        refusal = await self.access.refusal(fresh=True)
        if refusal is not None:
            await self._end(refusal)
            return
        try:
            content = parse_json_body((text_data or "").encode())
        except ApplicationError as error:
            await self._send({"type": "error", **error.as_envelope()})
            return
        await self.receive_json(content)

    async def _query(self, content: dict[str, Any]) -> None:
        if self.api_key is None:  # the signed-in chat page asks only as its own end user
            content = {**content, "user_id": self.owner.get_username()}
        # The message's trace context, else the handshake's: either is the question's parent.
        carrier = _message_trace_context(content) or _trace_headers(self.scope)
        fields = {k: v for k, v in content.items() if k != "type" and k not in TRACE_CONTEXT_KEYS}
        params = _query_params(fields)
        with tracing.continued(carrier):
            query = await to_thread(query_start)(
                owner=self.owner, params=params, api_key=self.api_key
            )
        self._follow(str(query.pk), after=None)

    async def _owned(self, content: dict[str, Any]) -> Any:
        query_id = content.get("query_id")
        if not isinstance(query_id, str):
            raise ApplicationError("query_id is required.", code="validation_error")
        return await to_thread(query_get)(owner=self.owner, query_id=query_id)

    async def _cancel(self, content: dict[str, Any]) -> None:
        query, requested = await to_thread(query_cancel)(query=await self._owned(content))
        await self._send(
            {
                "type": "cancel",
                "query_id": str(query.pk),
                "cancel_requested": requested,
                "status": query.status,
            }
        )

    async def _resume(self, content: dict[str, Any]) -> None:
        resume_after(content.get("last_event_id"))  # a malformed id: 400 before any read
        query = await self._owned(content)
        after = await resume_point(query=query, last_event_id=content.get("last_event_id"))
        self._follow(str(query.pk), after=after, stored=query)

    def _follow(self, query_id: str, *, after: str | None, stored: Any = None) -> None:
        previous = self.followers.pop(query_id, None)
        if previous is not None:
            previous.cancel()
        self.followers[query_id] = asyncio.create_task(
            self._forward(query_id, after=after, stored=stored)
        )

    async def _forward(self, query_id: str, *, after: str | None, stored: Any) -> None:
        async for entry_id, event in follow_query(query_id, after=after, stored=stored):
            if entry_id is not None:
                sent = await self._send({**event, "query_id": query_id, "event_id": entry_id})
                if not sent:
                    return
