"""Which browser origins may open the chat websocket.

An origin is scheme, host and port, compared whole: ``http://127.0.0.1:9999`` is not
``http://127.0.0.1:8000``. Allowed are the site's own origin (the scheme of the
connection, behind a trusted proxy its ``X-Forwarded-Proto``, and a ``Host`` that
ALLOWED_HOSTS accepts) and ``CSRF_TRUSTED_ORIGINS`` (``https://*.example.com`` allows
subdomains, as Django's CSRF check does). ALLOWED_HOSTS wildcards never allow an origin
by themselves.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from llmplatform.core.client_address import scheme_from_scope

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _parts(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, or None when it is not a web origin."""
    try:
        parsed = urlsplit(origin.strip())
        port = parsed.port
    except ValueError:
        return None
    scheme = parsed.scheme.lower()
    host = (parsed.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parsed.path not in ("", "/"):
        return None
    if parsed.username is not None or parsed.query or parsed.fragment:
        return None
    return scheme, host, port or _DEFAULT_PORTS[scheme]


def _matches(candidate: tuple[str, str, int], allowed: str) -> bool:
    pattern = _parts(allowed.replace("://*.", "://wildcard.", 1))
    if pattern is None:
        return False
    scheme, host, port = pattern
    if candidate[0] != scheme or candidate[2] != port:
        return False
    if "://*." in allowed:
        suffix = host[len("wildcard") :]  # ".example.com"
        return candidate[1].endswith(suffix)
    return candidate[1] == host


def site_origin(scope: dict[str, Any]) -> str | None:
    """This site's origin as the browser sees it, when the Host header is one we serve."""
    host_header = None
    for name, value in scope.get("headers") or []:
        if name.lower() == b"host":
            host_header = value.decode("latin-1").strip().lower()
    if not host_header:
        return None
    domain, _ = split_domain_port(host_header)
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    if not domain or not validate_host(domain, allowed_hosts):
        return None  # DNS rebinding: a foreign name pointed at us is not "our" origin
    return f"{scheme_from_scope(scope)}://{host_header}"


def origin_allowed(origin: str, *, scope: dict[str, Any]) -> bool:
    """True when a browser page from ``origin`` may use this websocket connection."""
    candidate = _parts(origin)
    if candidate is None:
        return False  # "null" (sandboxed frames, file://) and garbage
    own = site_origin(scope)
    allowed = [*settings.CSRF_TRUSTED_ORIGINS, *([own] if own else [])]
    return any(_matches(candidate, item) for item in allowed)
