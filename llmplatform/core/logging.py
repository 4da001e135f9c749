"""Structured JSON logs with the request id on every line and secrets masked."""

from __future__ import annotations

import contextvars
import json
import logging
import logging.handlers
import re
from datetime import UTC, datetime
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


def _configured_secrets() -> list[str]:
    from django.conf import settings

    names = (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GOOGLE_API_KEY",
        "OPENROUTER_API_KEY",
        "SERPAPI_KEY",
        "SECRET_KEY",
    )
    if not settings.configured:
        return []
    return [value for name in names if len(value := getattr(settings, name, "") or "") >= 6]


def mask_secrets(text: str) -> str:
    for secret in _configured_secrets():
        text = text.replace(secret, "[REDACTED]")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(
            lambda match: (match.group(1) if match.groups() else "") + "[REDACTED]", text
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
