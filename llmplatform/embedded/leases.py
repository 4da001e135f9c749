"""A data directory's lock and leases: which live processes use its server.

Shared by both sides: attaching processes write leases under the lock, and the launcher
reads them to decide when to stop (see the package docstring).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

# How often the launcher looks for live leases: a server outlives its last user by this.
LEASE_CHECK_S = 1.0
# Set by attach for child processes (ASGI workers, reloader children): they use the
# parent's server under the parent's lease. Internal, not a setting.
ATTACHED_URI_ENV = "LLMPLATFORM_EMBEDDED_MONGODB_URI"


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux), or None where /proc does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name: state is the 1st, starttime the 20th.
    fields = stat.rpartition(")")[2].split()
    return None if fields[0] == "Z" else fields[19]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if Path(f"/proc/{pid}").exists():
        return process_start_time(pid) is not None  # a zombie is not a user
    return True


def read_json(path: Path) -> dict[str, int | str] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write_json(path: Path, data: dict[str, int | str]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


@contextlib.contextmanager
def hold_lock(lock_file: Path) -> Iterator[None]:
    """Hold the data directory's lock (blocking); released on exit or process death."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def live_leases(leases_dir: Path) -> list[int]:
    """Pids holding a lease; deletes the leases of dead processes. Call under the lock."""
    pids = []
    for path in sorted(leases_dir.glob("*.json")) if leases_dir.is_dir() else []:
        lease = read_json(path)
        if lease is not None and _lease_holder_alive(lease):
            pids.append(int(lease["pid"]))
        else:
            path.unlink(missing_ok=True)
    return pids


def _lease_holder_alive(lease: dict[str, int | str]) -> bool:
    pid = int(lease["pid"])
    if not pid_alive(pid):
        return False
    started = lease.get("started")
    current = process_start_time(pid)
    return started is None or current is None or str(started) == current
