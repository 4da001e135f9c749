"""The first-run account of a development database: its credentials, shown and kept once.

``manage.py serve`` creates an admin and an API key on a fresh development database. Their
secrets are shown once, last (after the server's start-up logging, so no log line scrolls
them away), and written to ``FIRST_RUN_FILE`` (owner-only) until the first successful
login, when the receiver below deletes the file: by then the user has what they need.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver


@dataclass(frozen=True)
class FirstRunCredentials:
    username: str
    password: str
    api_key: str


def first_run_file() -> Path:
    return Path(settings.FIRST_RUN_FILE)


def first_run_file_write(*, credentials: FirstRunCredentials, base_url: str) -> Path:
    """Write the credentials to FIRST_RUN_FILE, readable by its owner only (0600)."""
    path = first_run_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    # Created with mode 0600: the secrets are never readable by others, not even briefly.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(
            "\n".join(first_run_lines(credentials=credentials, base_url=base_url, file=path)) + "\n"
        )
    return path


def first_run_lines(*, credentials: FirstRunCredentials, base_url: str, file: Path) -> list[str]:
    return [
        "First run: created an admin account and an API key. Shown only now.",
        "",
        f"  user name: {credentials.username}",
        f"  password:  {credentials.password}",
        f"    log in to the chat page {base_url}/",
        f"    and to the admin {base_url}/admin/ (change the password there).",
        "",
        f"  API key:   {credentials.api_key}",
        "    does not log in: send it with API requests as the header",
        "    Authorization: Bearer <API key>",
        "",
        f"Also written to {file} (readable by you only);",
        "that file is deleted at the first successful login.",
    ]


def first_run_box(*, credentials: FirstRunCredentials, base_url: str, file: Path) -> str:
    """The credentials in a plain ASCII box, for a terminal."""
    lines = first_run_lines(credentials=credentials, base_url=base_url, file=file)
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line.ljust(width)} |" for line in lines), rule])


@receiver(user_logged_in, dispatch_uid="first_run_file_delete")
def first_run_file_delete(**_kwargs: Any) -> None:
    """The first login (chat page or admin) shows the credentials worked: forget them."""
    first_run_file().unlink(missing_ok=True)
