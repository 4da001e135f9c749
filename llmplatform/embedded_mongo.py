"""Start (or reuse) the embedded SecantusDB server when no MONGODB_URI is configured.

The server runs as a child process (``llmplatform.secantus_launcher``), never inside
Django (licence and isolation, see that module). One server per data directory: a
second Django process (``manage.py shell`` next to ``make run``) reuses the running one
through its ready file instead of opening the same WiredTiger files twice. The process
that started the server stops it when it exits.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

START_TIMEOUT_S = 60.0


class EmbeddedMongoError(ImproperlyConfigured):
    """The embedded database could not be started."""


@dataclass
class EmbeddedServer:
    uri: str
    pid: int
    process: subprocess.Popen[bytes] | None  # None when reusing another process's server

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_ready_file(path: Path) -> dict[str, int | str] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def spawn_server(
    *,
    storage_path: str,
    ready_file: Path,
    log_file: Path,
    exit_with_parent: bool = False,
    extra_args: list[str] | None = None,
) -> EmbeddedServer:
    """Start a launcher process and wait until it listens. Raises EmbeddedMongoError."""
    ready_file.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "llmplatform.secantus_launcher",
        "--storage-path",
        storage_path,
        "--ready-file",
        str(ready_file),
    ]
    if exit_with_parent:
        command.append("--exit-with-parent")
    command.extend(extra_args or [])
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: Ctrl-C reaches us, and we stop it in order (atexit).
            start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = _read_ready_file(ready_file)
        if info is not None:
            return EmbeddedServer(
                uri=f"mongodb://{info['host']}:{info['port']}/", pid=process.pid, process=process
            )
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
    raise EmbeddedMongoError(
        "The embedded database (SecantusDB) did not start. Is the dev requirement installed "
        f"(`make install`)? Or set MONGODB_URI to use your own MongoDB. Log {log_file}:\n{tail}"
    )


def ensure_embedded_server(*, data_dir: Path) -> EmbeddedServer:
    """The embedded server for ``data_dir``: reused if running, else started and owned."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ready_file = data_dir / "server.json"
    with (data_dir / "launcher.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = _read_ready_file(ready_file)
        if info is not None:
            pid, host, port = int(info["pid"]), str(info["host"]), int(info["port"])
            if _pid_alive(pid) and _answers(host, port):
                return EmbeddedServer(uri=f"mongodb://{host}:{port}/", pid=pid, process=None)
        server = spawn_server(
            storage_path=str(data_dir / "data"),
            ready_file=ready_file,
            log_file=data_dir / "secantus.log",
        )
    atexit.register(server.stop)
    return server
