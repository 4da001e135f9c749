"""The one application error type and its JSON envelope.

Every 4xx/5xx the platform produces (REST, SSE ``error`` events, websocket errors)
is rendered as ``{"error": {"code", "message", "details"}}`` from an
``ApplicationError``. Services raise it; edges render it.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A failure the caller can act on, with a stable machine-readable code."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "error",
        status: int = 400,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.extra = extra or {}

    def as_envelope(self) -> dict[str, Any]:
        return error_envelope(code=self.code, message=self.message, details=self.extra)


def error_envelope(*, code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The single JSON shape of every error the platform returns."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


class NotFound(ApplicationError):
    """An object that does not exist *for this caller* (other tenants' objects included)."""

    def __init__(self, what: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(f"{what} not found.", code="not_found", status=404, extra=extra)


def internal_error() -> ApplicationError:
    """What a caller is told about a bug: it was logged, and trying again may work."""
    return ApplicationError(
        "The request could not be completed because of an internal error; it has been "
        "logged. Try again, and quote the X-Request-ID header if it persists.",
        code="internal_error",
        status=500,
    )
