"""The shared server of one data directory, and starting a launcher process.

``EmbeddedDatabase`` is what a process sees of its data directory's server: attach
(lease it, starting it if none runs), detach, status, stop. ``spawn_server`` starts a
launcher process (``python -m llmplatform.embedded.launcher``) and waits until it
listens; the test suite and the benchmarks use it for throw-away servers.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from llmplatform.embedded.leases import (
    ATTACHED_URI_ENV,
    hold_lock,
    live_leases,
    pid_alive,
    process_start_time,
    read_json,
    write_json,
)

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# The launcher runs from the project's root, where `-m llmplatform...` resolves.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


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


def spawn_server(
    *,
    storage_path: str,
    ready_file: Path,
    log_file: Path,
    exit_with_parent: bool = False,
    leases_dir: Path | None = None,
    lock_file: Path | None = None,
    extra_args: list[str] | None = None,
) -> EmbeddedServer:
    """Start a launcher process and wait until it listens. Raises EmbeddedMongoError.

    With ``leases_dir`` and ``lock_file`` the server stops itself once no live process
    holds a lease; with ``exit_with_parent`` when this process dies (throw-away servers).
    """
    ready_file.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "llmplatform.embedded.launcher",
        "--storage-path",
        storage_path,
        "--ready-file",
        str(ready_file),
    ]
    if exit_with_parent:
        command.append("--exit-with-parent")
    if leases_dir is not None and lock_file is not None:
        command.extend(["--leases-dir", str(leases_dir), "--lock-file", str(lock_file)])
    command.extend(extra_args or [])
    log_file.parent.mkdir(parents=True, exist_ok=True)
    environment = {key: value for key, value in os.environ.items() if key != ATTACHED_URI_ENV}
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: a Ctrl-C meant for the starting command must not stop a
            # server that other processes may be using (it stops when its leases end).
            start_new_session=True,
            cwd=PROJECT_ROOT,
            env=environment,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = read_json(ready_file)
        if info is not None:
            return EmbeddedServer(
                uri=f"mongodb://{info['host']}:{info['port']}/", pid=process.pid, process=process
            )
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
    raise EmbeddedMongoError(
        "The embedded database (SecantusDB) did not start. Is the dev requirement installed "
        f"(`make install`)? Or set MONGODB_URI to use your own MongoDB. Log {log_file}:\n{tail}"
    )


@dataclass(frozen=True)
class EmbeddedStatus:
    uri: str | None
    server_pid: int | None
    users: list[int]


@dataclass
class EmbeddedDatabase:
    """The shared server of one data directory, as seen by one process."""

    data_dir: Path
    _lease_pid: int | None = field(default=None, init=False, repr=False)

    @property
    def ready_file(self) -> Path:
        return self.data_dir / "server.json"

    @property
    def lock_file(self) -> Path:
        return self.data_dir / "launcher.lock"

    @property
    def leases_dir(self) -> Path:
        return self.data_dir / "leases"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "secantus.log"

    def attach(self) -> str:
        """Lease the server for this process, starting it if none runs; returns its URI.

        Raises EmbeddedMongoError when it cannot start. Idempotent.
        """
        from django.conf import settings

        with hold_lock(self.lock_file):
            self._write_lease()
            running = self._running()
            if running is not None:
                return running
            return spawn_server(
                storage_path=str(self.data_dir / "data"),
                ready_file=self.ready_file,
                log_file=self.log_file,
                leases_dir=self.leases_dir,
                lock_file=self.lock_file,
                extra_args=["--cache-mb", str(settings.EMBEDDED_MONGO_CACHE_MB)],
            ).uri

    def detach(self) -> None:
        """Give up this process's lease; the server stops if it was the last user."""
        if self._lease_pid == os.getpid():
            (self.leases_dir / f"{self._lease_pid}.json").unlink(missing_ok=True)
            self._lease_pid = None

    def status(self) -> EmbeddedStatus:
        """The running server, if any, and the pids that hold a lease on it."""
        with hold_lock(self.lock_file):
            uri = self._running()
            return EmbeddedStatus(
                uri=uri,
                server_pid=self._server_pid() if uri else None,
                users=live_leases(self.leases_dir),
            )

    def stop(self) -> bool:
        """Stop the server now, whoever uses it; False when none runs."""
        pid = self._server_pid()
        if pid is None or not pid_alive(pid):
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        return True

    def _server_pid(self) -> int | None:
        info = read_json(self.ready_file)
        return None if info is None else int(info["pid"])

    def _running(self) -> str | None:
        info = read_json(self.ready_file)
        if info is None:
            return None
        pid, host, port = int(info["pid"]), str(info["host"]), int(info["port"])
        if pid_alive(pid) and _answers(host, port):
            return f"mongodb://{host}:{port}/"
        return None

    def _write_lease(self) -> None:
        pid = os.getpid()
        self.leases_dir.mkdir(parents=True, exist_ok=True)
        lease: dict[str, int | str] = {"pid": pid, "command": " ".join(sys.argv)[:300]}
        started = process_start_time(pid)
        if started is not None:
            lease["started"] = started
        write_json(self.leases_dir / f"{pid}.json", lease)
        if self._lease_pid != pid:
            self._lease_pid = pid
            atexit.register(self.detach)


_databases: dict[Path, EmbeddedDatabase] = {}


def embedded_database(data_dir: Path | None = None) -> EmbeddedDatabase:
    """The embedded database of ``data_dir`` (default: settings.EMBEDDED_MONGO_DIR)."""
    if data_dir is None:
        from django.conf import settings

        data_dir = Path(settings.EMBEDDED_MONGO_DIR)
    data_dir = data_dir.resolve()
    return _databases.setdefault(data_dir, EmbeddedDatabase(data_dir))
