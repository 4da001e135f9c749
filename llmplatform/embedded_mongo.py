"""The embedded SecantusDB: who starts it, how processes share it, who stops it.

With ``MONGODB_URI`` unset the project uses an embedded SecantusDB server, run as its
own process (``python -m llmplatform.secantus_launcher``: GPL, never imported by Django),
one per data directory (``var/mongo``).

**Starting is explicit.** Importing settings starts nothing: they say
``MONGODB_EMBEDDED = True`` and point ``DATABASES`` at ``NOT_ATTACHED_URI``, a host that
cannot resolve. A process that needs the database calls ``attach_embedded_database()``
before its first query; that leases the server (starting it if none runs) and puts its
URI into ``settings.DATABASES`` and ``settings.MONGODB_URI``. The callers:

- ``manage.py``, for every command except the few in ``COMMANDS_WITHOUT_DATABASE``
  (``check``, ``help``, ``version``, ``collectstatic``...) and any ``--help``: a command
  added later works on the embedded default without being listed anywhere. (Django's
  model checks ask the server whether it supports search indexes; for the embedded
  default manage.py answers "no", true of SecantusDB, so ``check`` needs no server.)
- the ``serve`` command (``make run``);
- Celery worker, beat and ``celery shell`` (``import_modules`` in ``llmplatform/celery.py``);
- a script of your own: ``django.setup()`` then ``attach_embedded_database()``.

Child processes of an attached process (ASGI server workers, the runserver reloader's
child) inherit its URI through ``ATTACHED_URI_ENV`` and are covered by its lease. The
test suite does not share: ``tests/pytest_embedded_mongo.py`` starts a throw-away
in-memory server per run with ``spawn_server``.

**Sharing: a lock and one lease per process.** ``var/mongo/launcher.lock`` (``flock``)
serialises attaching and stopping. An attaching process, holding the lock, writes
``leases/<pid>.json`` (its pid and kernel start time, so a recycled pid does not count),
then reuses the server named by ``server.json`` if it is alive and answers, or starts
one and waits for it. It removes its lease when it exits (``atexit``; a forked child
never removes its parent's lease).

**Stopping: the server stops itself when its last user is gone.** No Django process
ever stops it. The launcher checks the leases every ``LEASE_CHECK_S``; once none is
held by a live process (the users exited, or crashed: dead pids are ignored and their
leases deleted) it takes the lock, checks again, stops, and removes ``server.json``
before it releases the lock. So an attach either finds a live server that has counted
its lease, or starts a new one after the old one has closed its files.

Way out: ``python -m llmplatform.embedded_mongo status`` lists the server and the
processes using it; ``... stop`` stops it now, even while processes still use it.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# How often the launcher looks for live leases: a server outlives its last user by this.
LEASE_CHECK_S = 1.0
# Settings' database host until attach_embedded_database() replaces it: a process that
# never attached fails its first query naming this host instead of using a server that
# nobody guarantees to keep running.
NOT_ATTACHED_URI = "mongodb://embedded-database-not-attached.invalid/"
# Set by attach for child processes (ASGI workers, reloader children): they use the
# parent's server under the parent's lease. Internal, not a setting.
ATTACHED_URI_ENV = "LLMPLATFORM_EMBEDDED_MONGODB_URI"
# The manage.py commands known to run without a database; every other one attaches, so a
# command added later cannot fail on the embedded default for want of a listing. Kept
# short on purpose: a command wrongly listed here fails on its first query, while one
# wrongly attaching only starts a server it did not need. (`makemigrations` and
# `squashmigrations` read the applied migrations, so they attach; `check` attaches when
# given --database.)
COMMANDS_WITHOUT_DATABASE = frozenset(
    {
        "help",
        "version",
        "check",
        "collectstatic",
        "findstatic",
        "compilemessages",
        "makemessages",
        "diffsettings",
        "optimizemigration",
        "sendtestemail",
        "startapp",
        "startproject",
    }
)


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


def _process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux), or None where /proc does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name: state is the 1st, starttime the 20th.
    fields = stat.rpartition(")")[2].split()
    return None if fields[0] == "Z" else fields[19]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if Path(f"/proc/{pid}").exists():
        return _process_start_time(pid) is not None  # a zombie is not a user
    return True


def _read_json(path: Path) -> dict[str, int | str] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _write_json(path: Path, data: dict[str, int | str]) -> None:
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
        lease = _read_json(path)
        if lease is not None and _lease_holder_alive(lease):
            pids.append(int(lease["pid"]))
        else:
            path.unlink(missing_ok=True)
    return pids


def _lease_holder_alive(lease: dict[str, int | str]) -> bool:
    pid = int(lease["pid"])
    if not _pid_alive(pid):
        return False
    started = lease.get("started")
    current = _process_start_time(pid)
    return started is None or current is None or str(started) == current


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
        "llmplatform.secantus_launcher",
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
            cwd=Path(__file__).resolve().parent.parent,
            env=environment,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = _read_json(ready_file)
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
        if pid is None or not _pid_alive(pid):
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        return True

    def _server_pid(self) -> int | None:
        info = _read_json(self.ready_file)
        return None if info is None else int(info["pid"])

    def _running(self) -> str | None:
        info = _read_json(self.ready_file)
        if info is None:
            return None
        pid, host, port = int(info["pid"]), str(info["host"]), int(info["port"])
        if _pid_alive(pid) and _answers(host, port):
            return f"mongodb://{host}:{port}/"
        return None

    def _write_lease(self) -> None:
        pid = os.getpid()
        self.leases_dir.mkdir(parents=True, exist_ok=True)
        lease: dict[str, int | str] = {"pid": pid, "command": " ".join(sys.argv)[:300]}
        started = _process_start_time(pid)
        if started is not None:
            lease["started"] = started
        _write_json(self.leases_dir / f"{pid}.json", lease)
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


def inherited_uri() -> str | None:
    """The URI an attached parent process handed down, if any (read by settings)."""
    return os.environ.get(ATTACHED_URI_ENV) or None


def attach_embedded_database() -> None:
    """Point Django at the embedded server, attaching to it; nothing with MONGODB_URI set.

    Call before the first query. Raises EmbeddedMongoError when it cannot start.
    """
    from django.conf import settings

    if not settings.MONGODB_EMBEDDED:
        return
    uri = embedded_database().attach()
    settings.MONGODB_URI = uri
    settings.DATABASES["default"]["HOST"] = uri
    os.environ[ATTACHED_URI_ENV] = uri


def attach_for_command(argv: list[str]) -> None:
    """manage.py: attach unless the command line ``argv`` is known not to need a database."""
    from django.core.management.base import CommandParser, handle_default_options

    # Honour --settings/--pythonpath before reading settings, as Django will.
    parser = CommandParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--settings")
    parser.add_argument("--pythonpath")
    options, _ = parser.parse_known_args(argv[2:])
    handle_default_options(options)
    from django.conf import settings

    try:
        embedded = settings.MONGODB_EMBEDDED
    except ImproperlyConfigured:
        return  # Django reports bad settings its own way
    if not embedded:
        return
    from django.db import connections

    # django-mongodb-backend's model checks (run by `check` and most commands) ask the
    # server whether it supports search indexes. SecantusDB never does: say so, and no
    # server is needed to answer.
    connections["default"].features.supports_search = False
    if command_uses_database(argv):
        attach_embedded_database()


def command_uses_database(argv: list[str]) -> bool:
    """Whether the manage.py command line ``argv`` needs the database (see above)."""
    subcommand = argv[1] if len(argv) > 1 else "help"
    arguments = argv[2:]
    if subcommand in ("-h", "--help", "--version") or {"-h", "--help"} & set(arguments):
        return False
    if subcommand == "check":
        return any(arg == "--database" or arg.startswith("--database=") for arg in arguments)
    return subcommand not in COMMANDS_WITHOUT_DATABASE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llmplatform.embedded_mongo",
        description="Inspect or stop the embedded SecantusDB server.",
    )
    parser.add_argument("action", choices=("status", "stop"))
    parser.add_argument("--data-dir", type=Path, help="default: settings.EMBEDDED_MONGO_DIR")
    args = parser.parse_args(argv)
    if args.data_dir is None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmplatform.settings")
    database = embedded_database(args.data_dir)
    if args.action == "status":
        state = database.status()
        if state.uri is None:
            print(f"not running ({database.data_dir})")
        else:
            users = ", ".join(map(str, state.users)) or "none"
            print(f"running at {state.uri} (pid {state.server_pid}); used by pids: {users}")
        return 0
    stopped = database.stop()
    print("stopped" if stopped else f"not running ({database.data_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
