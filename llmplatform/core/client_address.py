"""Who is on the other end of a request: the client address and scheme behind proxies.

daphne runs without ``--proxy-headers``: it would believe any client's
``X-Forwarded-For``. We read the socket's peer instead and honour ``X-Forwarded-For`` /
``X-Forwarded-Proto`` only when that peer is one of ``TRUSTED_PROXIES`` (empty by
default, so nothing a client sends can change its address).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest

UNKNOWN_CLIENT = "unknown"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def _is_trusted(address: str) -> bool:
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _canonical(address: str) -> str | None:
    """``address`` as an IP address string, or None when it is not one."""
    candidate = address.strip()
    if candidate.startswith("[") and "]" in candidate:  # "[::1]:443"
        candidate = candidate[1 : candidate.index("]")]
    elif candidate.count(":") == 1:  # "203.0.113.9:5000"
        candidate = candidate.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def is_trusted_proxy(peer: str | None) -> bool:
    """Whether the socket's remote address ``peer`` is one of TRUSTED_PROXIES."""
    return _is_trusted(_canonical(peer or "") or "")


def client_address(*, peer: str | None, forwarded_for: str | None) -> str:
    """The client's IP address.

    ``peer`` is the socket's remote address. When it is a trusted proxy, the
    ``X-Forwarded-For`` chain is read from the right (each proxy appends the address it
    saw), skipping trusted proxies: the first address no proxy of ours vouches for is the
    client. A client can prepend anything to the header, never change that entry.
    """
    current = _canonical(peer or "") or UNKNOWN_CLIENT
    if not forwarded_for or not _is_trusted(current):
        return current
    for hop in reversed([part for part in forwarded_for.split(",") if part.strip()]):
        address = _canonical(hop)
        if address is None:
            break  # a malformed entry: trust nothing to its left
        current = address
        if not _is_trusted(address):
            break
    return current


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    values = [value.decode("latin-1") for key, value in headers if key.lower() == name]
    # Several X-Forwarded-For lines are one list, in order.
    return ", ".join(values) if values else None


def client_address_from_request(request: HttpRequest) -> str:
    return client_address(
        peer=request.META.get("REMOTE_ADDR"),
        forwarded_for=request.META.get("HTTP_X_FORWARDED_FOR"),
    )


def client_address_from_scope(scope: dict[str, Any]) -> str:
    client = scope.get("client") or (None, None)
    headers = scope.get("headers") or []
    return client_address(peer=client[0], forwarded_for=_header(headers, b"x-forwarded-for"))


def scheme_from_scope(scope: dict[str, Any]) -> str:
    """``http`` or ``https`` for the browser's view of this connection.

    A TLS-terminating proxy in TRUSTED_PROXIES says ``X-Forwarded-Proto: https``; the
    socket itself then speaks plain http/ws.
    """
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme"))
    client = scope.get("client") or (None, None)
    if _is_trusted(_canonical(client[0] or "") or ""):
        forwarded = _header(scope.get("headers") or [], b"x-forwarded-proto")
        if forwarded:
            # The proxy nearest to us appended last.
            last = forwarded.split(",")[-1].strip().lower()
            if last in {"http", "https"}:
                scheme = last
    return scheme if scheme in {"http", "https"} else "http"
