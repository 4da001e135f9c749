"""Whether an open stream may go on: the API key it was opened with is still active, or the
browser login session of a cookie-authenticated websocket still holds.

A stream outlives the request that authenticated it, so SSE streams (``/api/v1`` and
``/v1``) and websockets ask again on a timer (every STREAM_ACCESS_CHECK_S), and a websocket
also before each message, with a database read (a question costs a vendor call anyway).
The timer accepts what this process read at most STREAM_ACCESS_CHECK_S ago, so a thousand
open streams cost at most two reads per key or session per process per second, never one
per streamed token, and a revoked key or a logout reaches every open stream, in every
process, within 2 x STREAM_ACCESS_CHECK_S (one second).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user

from llmplatform.core.auth import api_key_still_active
from llmplatform.core.bridge import to_thread
from llmplatform.core.errors import ApplicationError
from llmplatform.core.models import ApiKey

# How often an open stream asks again, and how old an answer it accepts.
STREAM_ACCESS_CHECK_S = 0.5
# The websocket close code for a credential that no longer holds (4000 + HTTP's 401).
CLOSE_NOT_AUTHENTICATED = 4401

_SESSION_CACHE_MAX = 10_000
# session key -> (the id of the user it signs in, or None; when it was read)
_sessions: dict[str, tuple[Any, float]] = {}
_sessions_lock = threading.Lock()


def api_key_revoked_error() -> ApplicationError:
    return ApplicationError(
        "This API key was revoked (or its owner deactivated) while the stream was open. "
        "Use an active key and reconnect.",
        code="api_key_revoked",
        status=401,
    )


def session_ended_error() -> ApplicationError:
    return ApplicationError(
        "You were signed out (or your session expired) while the connection was open. "
        "Sign in again and reconnect.",
        code="session_ended",
        status=401,
    )


def session_user_id(session_key: str, *, max_age_s: float) -> Any | None:
    """The id of the user ``session_key`` signs in, or None (logged out, expired, password
    changed, user deactivated): Django's own checks, as this process read them at most
    ``max_age_s`` ago (0: read now). Call in a thread. Raises nothing."""
    now_s = time.monotonic()
    with _sessions_lock:
        cached = _sessions.get(session_key)
    if cached is not None and now_s < cached[1] + max_age_s:
        return cached[0]
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(SimpleNamespace(session=store))  # what a request with this cookie sees
    user_id = user.pk if user.is_authenticated else None
    with _sessions_lock:
        if len(_sessions) >= _SESSION_CACHE_MAX:
            _sessions.clear()  # bounded; a full cache costs one read per session
        _sessions[session_key] = (user_id, now_s)
    return user_id


@dataclass
class StreamAccess:
    """The credential an open stream was authenticated with: an API key, or a login
    session (its key and the user it signed in)."""

    api_key: ApiKey | None = None
    session_key: str | None = None
    user_id: Any = None
    _checked_at: float = field(default_factory=time.monotonic)

    @classmethod
    def for_api_key(cls, api_key: ApiKey) -> StreamAccess:
        return cls(api_key=api_key)

    @classmethod
    def for_session(cls, *, session_key: str, user_id: Any) -> StreamAccess:
        return cls(session_key=session_key, user_id=user_id)

    def _refusal(self, *, fresh: bool) -> ApplicationError | None:
        max_age_s = 0.0 if fresh else STREAM_ACCESS_CHECK_S
        if self.api_key is not None:
            if api_key_still_active(api_key=self.api_key, max_age_s=max_age_s):
                return None
            return api_key_revoked_error()
        if (
            self.session_key is not None
            and self.user_id is not None
            and session_user_id(self.session_key, max_age_s=max_age_s) == self.user_id
        ):
            return None
        return session_ended_error()

    async def refusal(self, *, fresh: bool = False) -> ApplicationError | None:
        """Why the stream must end now (revoked key, ended session), or None."""
        self._checked_at = time.monotonic()
        return await to_thread(self._refusal)(fresh=fresh)

    async def due_refusal(self) -> ApplicationError | None:
        """``refusal()`` when STREAM_ACCESS_CHECK_S has passed since the last check; else
        None without any read (called as often as events arrive)."""
        if time.monotonic() - self._checked_at < STREAM_ACCESS_CHECK_S:
            return None
        return await self.refusal()
