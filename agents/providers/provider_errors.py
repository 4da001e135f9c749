"""ProviderError, and its constructors shared by the vendor modules.

Each vendor module decides *which* of its SDK's exceptions means what; these functions
decide what the platform says about it, so every vendor's failures read the same way and
none of them can leak a key, a header or a request body into a message.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from llmplatform.core.errors import ApplicationError
from llmplatform.core.logging import secrets_redact

# Longest Retry-After we honour: a vendor asking for minutes is better answered with an
# error the caller sees than with a request that sits silent.
MAX_RETRY_AFTER_SECONDS = 60.0

# Vendor error texts are useful to operators but may echo a (partial) key back.
_SECRET_LIKE = re.compile(r"(sk-[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{10,}|[A-Za-z0-9_\-]{32,})")


class ProviderError(ApplicationError):
    """A vendor call failed. ``retryable`` says whether trying again may succeed.

    The message never contains keys or request bodies: it names the provider, what
    went wrong and what the caller can do.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        retryable: bool,
        code: str = "provider_error",
        status: int = 502,
        upstream_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            code=code,
            status=status,
            extra={
                "provider": provider,
                "retryable": retryable,
                "upstream_status": upstream_status,
            },
        )
        self.provider = provider
        self.retryable = retryable
        self.upstream_status = upstream_status
        self.retry_after = retry_after


def redact(text: str, *, limit: int = 300) -> str:
    """``text`` without anything that looks like a credential, cut to ``limit`` characters.

    Every configured secret, and any 6+ character piece of one, goes first (whatever its
    shape, plain or percent-, JSON- or base64-encoded: ``secrets_redact``), then anything
    shaped like a key.
    """
    cleaned = _SECRET_LIKE.sub("[redacted]", secrets_redact(text)).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # neither seconds nor an HTTP date: retry on our own schedule
    return max(0.0, parsed.timestamp() - time.time())


def status_error(
    *,
    provider: str,
    key_setting: str,
    status: int,
    retry_after: float | None = None,
    vendor_message: str | None = None,
    auth_failed: bool = False,
) -> ProviderError:
    """The ProviderError for an HTTP error status from ``provider``."""
    if auth_failed or status in (401, 403):
        return ProviderError(
            f"{provider} rejected the API credentials (HTTP {status}): check the "
            f"{key_setting} setting.",
            provider=provider,
            retryable=False,
            code="provider_auth_failed",
            status=502,
            upstream_status=status,
        )
    if status == 429:
        wait = f" Retry after {retry_after:g} s." if retry_after is not None else ""
        return ProviderError(
            f"{provider} is rate-limiting requests (HTTP 429).{wait}",
            provider=provider,
            retryable=True,
            code="provider_rate_limited",
            status=429,
            upstream_status=status,
            retry_after=None if retry_after is None else min(retry_after, MAX_RETRY_AFTER_SECONDS),
        )
    if status >= 500:
        return ProviderError(
            f"{provider} had a server error (HTTP {status}); try again later.",
            provider=provider,
            retryable=True,
            upstream_status=status,
            retry_after=None if retry_after is None else min(retry_after, MAX_RETRY_AFTER_SECONDS),
        )
    # Other 4xx: the request itself was refused; repeating it cannot help.
    detail = f": {redact(vendor_message)}" if vendor_message else "."
    return ProviderError(
        f"{provider} refused the request (HTTP {status}){detail}",
        provider=provider,
        retryable=False,
        upstream_status=status,
    )


def timeout_error(*, provider: str) -> ProviderError:
    return ProviderError(
        f"{provider} did not answer within the configured timeout "
        "(PROVIDER_CONNECT_TIMEOUT / PROVIDER_READ_TIMEOUT).",
        provider=provider,
        retryable=True,
        code="provider_timeout",
        status=504,
    )


def connection_error(*, provider: str) -> ProviderError:
    return ProviderError(
        f"Could not reach {provider}, or the connection broke before the answer was complete.",
        provider=provider,
        retryable=True,
    )


def malformed_error(*, provider: str) -> ProviderError:
    return ProviderError(
        f"{provider} sent a response that is not valid JSON.",
        provider=provider,
        retryable=True,
    )


def incomplete_stream_error(*, provider: str) -> ProviderError:
    return ProviderError(
        f"The {provider} stream ended before the answer was finished.",
        provider=provider,
        retryable=True,
    )


def unexpected_response_error(*, provider: str, what: str) -> ProviderError:
    return ProviderError(
        f"{provider} sent a response the platform does not understand: {what}.",
        provider=provider,
        retryable=True,
    )


def _vendor_message(body: object) -> str | None:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
    return None


def map_sdk_error(
    exc: BaseException, *, sdk: ModuleType, provider: str, key_setting: str
) -> ProviderError:
    """Our error for an exception of the ``openai`` or ``anthropic`` SDK.

    Both SDKs are generated by the same tool and raise the same exception classes
    (``APITimeoutError``, ``APIConnectionError``, ``APIStatusError``); httpx2's transport
    errors and broken JSON can also escape them mid-stream.
    """
    import json

    import httpx2

    if isinstance(exc, json.JSONDecodeError):
        return malformed_error(provider=provider)
    if isinstance(exc, sdk.APITimeoutError | httpx2.TimeoutException):
        return timeout_error(provider=provider)
    if isinstance(exc, sdk.APIConnectionError | httpx2.TransportError):
        return connection_error(provider=provider)
    if isinstance(exc, sdk.APIStatusError):
        # Anthropic's 529 "overloaded" is a 5xx: retried like the others.
        response: Any = exc.response
        return status_error(
            provider=provider,
            key_setting=key_setting,
            status=exc.status_code,
            retry_after=parse_retry_after(response.headers),
            vendor_message=_vendor_message(exc.body),
        )
    # An error event inside an otherwise successful (HTTP 200) stream.
    return ProviderError(
        f"{provider} reported an error in the middle of the answer.",
        provider=provider,
        retryable=True,
    )
