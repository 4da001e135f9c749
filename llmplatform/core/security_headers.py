"""Security headers for responses Django's middleware never sees, and the docs' CSP.

Django's middleware sets ``Content-Security-Policy`` (``SECURE_CSP``), ``nosniff``,
``Referrer-Policy`` and ``X-Frame-Options`` on every response it serves. SSE responses
come from Channels consumers outside that stack, so they add ``sse_security_headers()``.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.csp import CSP, build_policy

# An event stream is data, never a document: nothing in it may load or run.
SSE_CSP = {"default-src": [CSP.NONE], "frame-ancestors": [CSP.NONE]}


def sse_security_headers() -> list[tuple[bytes, bytes]]:
    """The headers every SSE (and other consumer-served HTTP) response must carry."""
    headers = [
        (b"X-Content-Type-Options", b"nosniff"),
        (b"X-Frame-Options", settings.X_FRAME_OPTIONS.encode()),
        (b"Content-Security-Policy", build_policy(SSE_CSP).encode()),
    ]
    if settings.SECURE_REFERRER_POLICY:
        headers.append((b"Referrer-Policy", settings.SECURE_REFERRER_POLICY.encode()))
    return headers


def docs_csp() -> dict[str, list[str]]:
    """``SECURE_CSP`` plus what ReDoc needs: a web worker from a blob.

    Swagger UI and ReDoc are served from our static files (drf-spectacular-sidecar), and
    Swagger UI's start-up script from a URL (no inline script), so scripts stay 'self'.
    Our ReDoc template loads no web fonts, so nothing outside this origin is allowed.
    """
    policy = {name: list(values) for name, values in settings.SECURE_CSP.items()}
    policy["worker-src"] = [CSP.SELF, "blob:"]
    return policy
