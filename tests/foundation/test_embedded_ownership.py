"""The embedded database has one owner: itself. Real processes share it through leases.

Importing settings starts nothing; the commands that need the database attach to it; it
stops once no live process holds a lease, and never while one does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmplatform.embedded.leases import ATTACHED_URI_ENV
from llmplatform.embedded.server import embedded_database
from tests.live_services import stop_process
from tests.processes import celery_worker_command, free_port

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0

# A user of the embedded database: attaches, prints the URI, then for every line on
# stdin writes a note and prints everyone's notes; exits (normally) at end of input.
USER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import pymongo

    from llmplatform.embedded.server import embedded_database

    uri = embedded_database(Path(sys.argv[1])).attach()
    print(uri, flush=True)
    for _line in sys.stdin:
        with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
            client.db.notes.insert_one({"by": sys.argv[2]})
            print(sorted(note["by"] for note in client.db.notes.find()), flush=True)
    """
)


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for: {what}")
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    """Running: a zombie (exited, not yet reaped by its parent) does not count."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _base_env() -> dict[str, str]:
    # The test run's own MONGODB_URI must not leak in: these processes use the embedded default.
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", ATTACHED_URI_ENV)}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture
def data_dir(tmp_path) -> Iterator[Path]:
    directory = tmp_path / "mongo"
    yield directory
    # Never leave a server behind, whatever the test did.
    info = _server_info(directory)
    if info is not None and _alive(int(info["pid"])):
        os.kill(int(info["pid"]), signal.SIGKILL)


def _server_info(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / "server.json").read_text())
    except (OSError, ValueError):
        return None


def _start_user(data_dir: Path, name: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", USER, str(data_dir), name],
        cwd=ROOT,
        env=_base_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    uri = process.stdout.readline().strip()
    assert uri.startswith("mongodb://127.0.0.1:"), f"{name} did not attach"
    return process, uri


def _write_note(user: subprocess.Popen[str]) -> list[str]:
    user.stdin.write("note\n")
    user.stdin.flush()
    return json.loads(user.stdout.readline().replace("'", '"'))


def _launcher_log(data_dir: Path) -> str:
    return (data_dir / "secantus.log").read_text(errors="replace")


def _wait_until_stopped(data_dir: Path, server_pid: int) -> None:
    _wait_for(lambda: not _alive(server_pid), "the server to stop")
    assert _server_info(data_dir) is None  # and it says so


def test_server_outlives_its_starter_while_another_process_uses_it(data_dir):
    first, uri = _start_user(data_dir, "A")
    server_pid = int(_server_info(data_dir)["pid"])
    second, second_uri = _start_user(data_dir, "B")
    assert second_uri == uri and int(_server_info(data_dir)["pid"]) == server_pid  # joined
    assert _write_note(first) == ["A"]

    first.stdin.close()  # A, which started the server, exits normally
    assert first.wait(timeout=WAIT_S) == 0
    # The launcher has seen A go and B stay...
    _wait_for(
        lambda: f"leases held by {second.pid}\n" in _launcher_log(data_dir),
        "the launcher to count B as its only user",
    )
    # ...and still serves B, with A's data.
    assert _alive(server_pid)
    assert _write_note(second) == ["A", "B"]

    second.stdin.close()  # the last user leaves: the server stops by itself
    assert second.wait(timeout=WAIT_S) == 0
    _wait_until_stopped(data_dir, server_pid)
    assert not list((data_dir / "leases").glob("*.json"))


def test_a_crashed_user_does_not_keep_the_server_forever(data_dir):
    user, _ = _start_user(data_dir, "A")
    server_pid = int(_server_info(data_dir)["pid"])
    user.kill()  # no atexit: its lease file stays behind, with a dead pid
    user.wait()
    _wait_until_stopped(data_dir, server_pid)
    assert not (data_dir / "leases" / f"{user.pid}.json").exists()  # cleaned up


def test_a_restarted_server_keeps_the_data(data_dir):
    user, _ = _start_user(data_dir, "A")
    assert _write_note(user) == ["A"]
    server_pid = int(_server_info(data_dir)["pid"])
    user.stdin.close()
    user.wait(timeout=WAIT_S)
    _wait_until_stopped(data_dir, server_pid)

    again, _ = _start_user(data_dir, "B")
    assert int(_server_info(data_dir)["pid"]) != server_pid  # a new server...
    assert _write_note(again) == ["A", "B"]  # ...on the same files
    again.stdin.close()
    again.wait(timeout=WAIT_S)


def test_a_forked_child_does_not_give_up_its_parents_lease(data_dir):
    script = textwrap.dedent(
        """
        import os, sys
        from pathlib import Path
        from llmplatform.embedded.server import embedded_database

        database = embedded_database(Path(sys.argv[1]))
        database.attach()
        child = os.fork()
        if child == 0:
            sys.exit(0)  # runs the inherited atexit handlers, as a pool worker would
        os.waitpid(child, 0)
        lease = database.leases_dir / f"{os.getpid()}.json"
        print("kept" if lease.exists() else "lost", database.status().users == [os.getpid()])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(data_dir)],
        cwd=ROOT,
        env=_base_env(),
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=True,
    )
    assert result.stdout.split() == ["kept", "True"]


def test_status_and_stop_from_the_command_line(data_dir):
    user, uri = _start_user(data_dir, "A")
    server_pid = int(_server_info(data_dir)["pid"])

    def cli(action: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "llmplatform.embedded", action, "--data-dir", data_dir],
            cwd=ROOT,
            env=_base_env(),
            capture_output=True,
            text=True,
            timeout=WAIT_S,
            check=True,
        ).stdout

    assert cli("status").strip() == (
        f"running at {uri} (pid {server_pid}); used by pids: {user.pid}"
    )
    assert cli("stop").strip() == "stopped"  # the way out, even with a user left
    assert not _alive(server_pid)
    assert cli("status").startswith("not running")
    user.stdin.close()
    user.wait(timeout=WAIT_S)


# ----- manage.py, serve and Celery on the embedded default -----


@pytest.fixture
def django_env(tmp_path, data_dir) -> dict[str, str]:
    """The project's settings with the embedded database in ``data_dir``."""
    (tmp_path / "embedded_test_settings.py").write_text(
        "from llmplatform.settings import *  # noqa: F403\n"
        f"EMBEDDED_MONGO_DIR = {str(data_dir)!r}\n"
    )
    env = _base_env()
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{tmp_path}"
    env["DJANGO_SETTINGS_MODULE"] = "embedded_test_settings"
    env["LLMPLATFORM_SKIP_DOTENV"] = "1"
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_and_help_start_no_server(django_env, data_dir):
    for args in (("check",), ("help",), ("help", "migrate"), ("migrate", "--help")):
        result = _manage(django_env, *args)
        assert result.returncode == 0, result.stderr
    assert not data_dir.exists()  # no server, no lease, not even a directory


def test_shell_attaches_and_the_server_stops_after_it(django_env, data_dir):
    code = "from django.contrib.auth import get_user_model; print(get_user_model().objects.count())"
    result = _manage(django_env, "shell", "--no-imports", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
    assert "leases held by" in _launcher_log(data_dir)  # it ran on the embedded server
    _wait_for(lambda: _server_info(data_dir) is None, "the server to stop after the shell")
    assert "leases held by nobody: stopping" in _launcher_log(data_dir)


def _health(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/v1/health", timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_make_run_keeps_the_database_when_an_earlier_shell_exits(django_env, data_dir, tmp_path):
    # The bug this replaces: a `manage.py shell` that happened to start the server took
    # it away from `make run` when it exited.
    env = {**django_env, "ENVIRONMENT": "development"}
    env.pop("REDIS_URL", None)  # the embedded default, as `make run` has it
    code = (
        "import sys; from django.contrib.auth import get_user_model; "
        "print(get_user_model().objects.count(), flush=True); sys.stdin.readline()"
    )
    shell = subprocess.Popen(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert shell.stdout.readline().strip() == "0"
    server_pid = int(_server_info(data_dir)["pid"])

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "serve.log").open("w") as log:
        serve = subprocess.Popen(
            [sys.executable, "manage.py", "serve"],
            cwd=ROOT,
            env={**env, "PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def serving() -> bool:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return _health(url)["database"]["connected"] is True
            except OSError:
                return False

        _wait_for(serving, "serve to answer with its database connected")
        assert int(_server_info(data_dir)["pid"]) == server_pid  # serve joined the shell's

        shell.stdin.close()
        assert shell.wait(timeout=WAIT_S) == 0
        _wait_for(
            lambda: f"leases held by {serve.pid}\n" in _launcher_log(data_dir),
            "the launcher to count serve as its only user",
        )
        assert _health(url)["database"]["connected"] is True
        assert _alive(server_pid)
    finally:
        serve.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop_process(serve)
    _wait_until_stopped(data_dir, server_pid)


@pytest.mark.slow
def test_a_celery_worker_on_the_embedded_default_holds_a_lease(django_env, data_dir, tmp_path):
    env = {**django_env, "CELERY_KEY_PREFIX": f"test-embedded-{os.getpid()}:"}
    with (tmp_path / "worker.log").open("w") as log:
        worker = subprocess.Popen(
            celery_worker_command(name=f"embedded-{os.getpid()}", concurrency=1),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        database = embedded_database(data_dir)
        # status() waits for the lock, so for an attach in progress to finish.
        _wait_for(lambda: worker.pid in database.status().users, "the worker to attach")
        state = database.status()
        assert state.uri is not None and state.users == [worker.pid]
        server_pid = state.server_pid
    finally:
        stop_process(worker)
    _wait_until_stopped(data_dir, server_pid)
