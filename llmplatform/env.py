"""Typed reading of configuration from the environment (and an optional ``.env`` file).

This is the only module that reads ``os.environ`` for settings. Every reader names the
variable in its error, so a bad value stops start-up with a message that says which
variable to fix and what it should look like.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


class EnvError(ImproperlyConfigured):
    """A configuration variable has a value the platform cannot use."""


_previous_excepthook = sys.excepthook


def _database_unreachable(exc_type: type[BaseException], exc: BaseException) -> str | None:
    """The one-line reason when ``exc`` says MongoDB (MONGODB_URI) could not be reached."""
    if not exc_type.__module__.startswith("pymongo"):
        return None
    from pymongo.errors import ConnectionFailure

    if not issubclass(exc_type, ConnectionFailure):
        return None
    # pymongo names hosts and ports, never the URI's password; the topology dump after
    # the first clause is noise here.
    reason = str(exc).split(" (configured timeouts")[0].split(", Timeout:")[0]
    return (
        f"the MongoDB server of MONGODB_URI could not be reached ({reason}). Check "
        "MONGODB_URI and that the server is running and reachable from here."
    )


def _configuration_error_hook(exc_type, exc, tb) -> None:
    """A bad or missing setting that stops a process is one line, not a traceback; so is
    a MONGODB_URI that nothing answers (``check --deploy``, ``migrate``, start-up)."""
    if issubclass(exc_type, EnvError):
        sys.stderr.write(f"Configuration error: {exc}\n")
        return
    unreachable = _database_unreachable(exc_type, exc)
    if unreachable is not None:
        sys.stderr.write(f"Configuration error: {unreachable}\n")
        return
    _previous_excepthook(exc_type, exc, tb)


# Settings are read when a process starts (manage.py, daphne, celery): an EnvError that
# reaches the top there is the operator's to fix, and the message says how.
if sys.excepthook is sys.__excepthook__:
    sys.excepthook = _configuration_error_hook


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def load_dotenv_file(path: Path) -> None:
    """Load ``path`` into the environment without overriding variables already set."""
    if os.environ.get("LLMPLATFORM_SKIP_DOTENV") == "1" or not path.is_file():
        return
    from dotenv import load_dotenv

    load_dotenv(path, override=False)


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return value.strip()


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value


def env_optional_str(name: str) -> str | None:
    """A string that is ``None`` when unset or empty (e.g. optional base URLs)."""
    value = _raw(name)
    return value or None


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise EnvError(f"{name}={value!r} is not a boolean: use true or false.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise EnvError(
            f"{name}={value!r} is not a whole number (example: {name}={default})."
        ) from None
    if minimum is not None and number < minimum:
        raise EnvError(f"{name}={number} is too small: it must be at least {minimum}.")
    return number


def env_optional_int(name: str, *, minimum: int = 0) -> int | None:
    """A whole number that is ``None`` (no limit) when unset or empty."""
    if not _raw(name):
        return None
    return env_int(name, minimum, minimum=minimum)


def env_optional_float(name: str, *, minimum: float = 0.0) -> float | None:
    """A number that is ``None`` (no limit) when unset or empty."""
    if not _raw(name):
        return None
    return env_float(name, minimum, minimum=minimum)


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise EnvError(f"{name}={value!r} is not a number (example: {name}={default}).") from None
    if minimum is not None and number < minimum:
        raise EnvError(f"{name}={number} is too small: it must be at least {minimum}.")
    return number


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise EnvError(f"{name}={value!r} is not one of: {', '.join(choices)}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """A list given as JSON (``["a", "b"]``, as the seed's .env does) or comma-separated."""
    value = _raw(name)
    if value is None or value == "":
        return list(default)
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise EnvError(
                f'{name} is not a valid JSON list (example: ["http://localhost:3000"]).'
            ) from None
        if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
            raise EnvError(f"{name} must be a JSON list of strings.")
        return [item.strip() for item in parsed if item.strip()]
    return [item.strip() for item in value.split(",") if item.strip()]


def env_networks(name: str) -> list[str]:
    """IP addresses or CIDR networks (``10.0.0.0/8, 127.0.0.1``), comma-separated or JSON."""
    import ipaddress

    networks = []
    for item in env_list(name, []):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise EnvError(
                f"{name} contains {item!r}, which is not an IP address or network "
                f"(example: {name}=10.0.0.0/8,127.0.0.1)."
            ) from None
    return networks
