"""Structured JSON logs with the request id on every line and secrets masked."""

from __future__ import annotations

import contextvars
import json
import logging
import logging.handlers
import re
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# API keys (ours and the vendors') and bearer tokens, whatever logged them.
_SECRET_PATTERNS = [
    re.compile(r"llmp_[A-Za-z0-9_\-]{8,}"),
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.=]{8,}"),
    re.compile(
        r"(?i)((?:api[_-]?key|x-goog-api-key|x-api-key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',&]{6,}"
    ),
]
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


# Settings whose values are credentials, and URLs whose password part is one.
SECRET_SETTINGS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GOOGLE_API_KEY",
    "OPENROUTER_API_KEY",
    "SERPAPI_KEY",
    "SECRET_KEY",
)
SECRET_URL_SETTINGS = ("MONGODB_URI", "REDIS_URL")
# A fragment this long of a configured secret is redacted wherever it appears: vendors
# echo keys back truncated ("key abcd1234****") or without their prefix.
SECRET_FRAGMENT = 8
REDACTED = "[REDACTED]"


def _configured_secrets() -> list[str]:
    from urllib.parse import urlsplit

    from django.conf import settings

    if not settings.configured:
        return []
    secrets = [getattr(settings, name, "") or "" for name in SECRET_SETTINGS]
    if getattr(settings, "SECRET_KEY", "") == getattr(settings, "DEFAULT_SECRET_KEY", None):
        secrets.remove(settings.SECRET_KEY)  # public, and it contains ordinary words
    for name in SECRET_URL_SETTINGS:
        try:
            secrets.append(urlsplit(getattr(settings, name, "") or "").password or "")
        except ValueError:
            continue
    return [secret for secret in secrets if len(secret) >= 6]


@lru_cache(maxsize=4)
def _fragments(secrets: tuple[str, ...]) -> frozenset[str]:
    return frozenset(
        secret[start : start + SECRET_FRAGMENT]
        for secret in secrets
        for start in range(len(secret) - SECRET_FRAGMENT + 1)
    )


def secrets_redact(text: str) -> str:
    """``text`` with every configured secret, and any 8+ character piece of one, replaced."""
    secrets = tuple(_configured_secrets())
    for secret in secrets:  # shorter than a fragment: whole occurrences only
        text = text.replace(secret, REDACTED)
    fragments = _fragments(secrets)
    if not fragments or len(text) < SECRET_FRAGMENT:
        return text
    # Mark every character covered by a fragment; overlapping fragments make one run, so
    # a longer piece of a key (any length >= 8) is covered whole.
    covered = bytearray(len(text))
    for start in range(len(text) - SECRET_FRAGMENT + 1):
        if text[start : start + SECRET_FRAGMENT] in fragments:
            covered[start : start + SECRET_FRAGMENT] = b"\x01" * SECRET_FRAGMENT
    if not any(covered):
        return text
    out: list[str] = []
    index = 0
    while index < len(text):
        if covered[index]:
            while index < len(text) and covered[index]:
                index += 1
            out.append(REDACTED)
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def mask_secrets(text: str) -> str:
    text = secrets_redact(text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(
            lambda match: (match.group(1) if match.groups() else "") + REDACTED, text
        )
    return text


_base_record_factory = logging.getLogRecordFactory()


def _record_with_request_id(*args: object, **kwargs: object) -> logging.LogRecord:
    record = _base_record_factory(*args, **kwargs)
    record.request_id = request_id_var.get()
    return record


# Stamped when the record is made (not by a handler filter), so every handler, including
# ones added later by tools, sees the id of the request that logged it.
if getattr(_base_record_factory, "__name__", "") != "_record_with_request_id":
    logging.setLogRecordFactory(_record_with_request_id)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return mask_secrets(json.dumps(payload, default=str))


def make_file_handler(path: str) -> logging.Handler:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Watched: logrotate can move the file away without losing lines.
    return logging.handlers.WatchedFileHandler(path)
