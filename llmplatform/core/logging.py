"""Structured JSON logs with the request id on every line and secrets masked."""

from __future__ import annotations

import base64
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
    "METRICS_TOKEN",
)
SECRET_URL_SETTINGS = ("MONGODB_URI", "REDIS_URL")
# A piece this long of a configured secret is redacted wherever it appears: vendors echo
# keys back truncated ("key abcd1234****"), cut into pieces or without their prefix.
SECRET_FRAGMENT = 6
REDACTED = "[REDACTED]"

# Encodings a secret is found through, decoded before matching: percent-encoding (of any
# depth: %2541 is %41 is "A"), JSON and JavaScript escapes (\u0041, however many
# backslashes a re-serialised text put before it), and JSON's escaped slash (\/).
_ESCAPED = re.compile(r"%(?:25)*([0-9A-Fa-f]{2})|\\+u([0-9A-Fa-f]{4})|\\+(/)")


def _configured_secrets() -> tuple[str, ...]:
    from urllib.parse import urlsplit

    from django.conf import settings

    if not settings.configured:
        return ()
    secrets = [getattr(settings, name, "") or "" for name in SECRET_SETTINGS]
    if getattr(settings, "SECRET_KEY", "") == getattr(settings, "DEFAULT_SECRET_KEY", None):
        secrets.remove(settings.SECRET_KEY)  # public, and it contains ordinary words
    for name in SECRET_URL_SETTINGS:
        try:
            secrets.append(urlsplit(getattr(settings, name, "") or "").password or "")
        except ValueError:
            continue
    return tuple(sorted({secret for secret in secrets if len(secret) >= SECRET_FRAGMENT}))


def _base64_cores(secret: str) -> list[str]:
    """The base64 text of ``secret`` inside any longer base64 text, at each of the three
    byte alignments and in both alphabets: only the characters that depend on the secret's
    bytes alone (the ones shared with the bytes before or after it vary)."""
    raw = secret.encode()
    cores = []
    for offset in range(3):
        encoded = base64.b64encode(b"\x00" * offset + raw).decode()
        core = encoded[-(-8 * offset // 6) : 8 * (offset + len(raw)) // 6]
        cores += [core, core.translate(_URLSAFE)]
    return cores


_URLSAFE = str.maketrans("+/", "-_")


def _trie_pattern(words: set[str]) -> str:
    """One regex alternation of ``words`` factored by common prefixes, so matching tries
    a few characters per position instead of every word."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})

    def emit(node: dict) -> str:
        if not node:
            return ""
        branches = [re.escape(char) + emit(child) for char, child in sorted(node.items())]
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return emit(trie)


@lru_cache(maxsize=4)
def _fragment_matcher(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    """Every SECRET_FRAGMENT-character window of each secret and of its base64 forms, as
    one compiled regex (a lookahead, so overlapping windows all match): built once per set
    of configured secrets."""
    windows: set[str] = set()
    for secret in secrets:
        for form in (secret, *_base64_cores(secret)):
            windows.update(
                form[start : start + SECRET_FRAGMENT]
                for start in range(len(form) - SECRET_FRAGMENT + 1)
            )
    if not windows:
        return None
    return re.compile(f"(?=({_trie_pattern(windows)}))")


def _decoded(text: str) -> tuple[str, list[int], list[int]]:
    """``text`` with its escapes (_ESCAPED) decoded, and for each decoded character where
    it starts and ends in ``text``."""
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    position = 0
    for match in _ESCAPED.finditer(text):
        for index in range(position, match.start()):
            chars.append(text[index])
            starts.append(index)
            ends.append(index + 1)
        percent, unicode, slash = match.groups()
        chars.append(chr(int(percent or unicode, 16)) if (percent or unicode) else slash)
        starts.append(match.start())
        ends.append(match.end())
        position = match.end()
    for index in range(position, len(text)):
        chars.append(text[index])
        starts.append(index)
        ends.append(index + 1)
    return "".join(chars), starts, ends


def _covered(matcher: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    """Spans of ``text`` (start, end) that hold a piece of a secret, in any encoding."""
    spans = [(m.start(), m.start() + SECRET_FRAGMENT) for m in matcher.finditer(text)]
    if _ESCAPED.search(text):
        view, starts, ends = _decoded(text)
        spans += [
            (starts[m.start()], ends[m.start() + SECRET_FRAGMENT - 1])
            for m in matcher.finditer(view)
        ]
    return spans


def secrets_redact(text: str) -> str:
    """``text`` with every piece of SECRET_FRAGMENT or more characters of a configured
    secret replaced, found plain, percent-encoded, JSON-escaped or base64-encoded.

    Overlapping pieces make one run, so a longer piece of a key is replaced whole.
    """
    matcher = _fragment_matcher(_configured_secrets())
    if matcher is None or len(text) < SECRET_FRAGMENT:
        return text
    spans = sorted(_covered(matcher, text))
    if not spans:
        return text
    out: list[str] = []
    position = 0
    run_start, run_end = spans[0]
    for start, end in spans[1:]:
        if start <= run_end:
            run_end = max(run_end, end)
            continue
        out += [text[position:run_start], REDACTED]
        position, (run_start, run_end) = run_end, (start, end)
    out += [text[position:run_start], REDACTED, text[run_end:]]
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
