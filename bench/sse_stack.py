"""The processes behind the SSE benchmark: fake OpenAI server, throw-away SecantusDB, our ASGI
server (daphne, uvicorn or granian; with or without Redis + a Celery worker) and the LiteLLM
proxy in its own virtualenv.

Every child is started in its own session and recorded in a ``Children``; ``stop_all()``
(called from a ``finally``) ends each one by its process group id. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from tests.processes import ASGI_APPLICATION, asgi_server_command, celery_worker_command, free_port  # noqa: E402

WORKDIR = ROOT / "var" / "bench-sse"
LITELLM_VENV = ROOT / "var" / "bench-litellm-venv"
# Pinned so runs stay comparable; `--litellm-spec` tries another release.
LITELLM_SPEC = "litellm[proxy]==1.108.7"
LITELLM_INSTALL_TIMEOUT_S = 600
START_TIMEOUT_S = 90


def progress(message: str) -> None:
    print(f"[sse-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Children:
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def popen(
        self, name: str, command: list[str], *, log: Path | None, **kwargs
    ) -> subprocess.Popen:
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            kwargs.setdefault("stdout", log.open("w"))
            kwargs.setdefault("stderr", subprocess.STDOUT)
        process = subprocess.Popen(command, start_new_session=True, **kwargs)
        self.processes.append((name, process))
        return process

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()

    def stop_all(self) -> None:
        for _name, process in reversed(self.processes):
            self.stop(process)
        self.processes.clear()


def _get_ok(url: str, headers: dict[str, str] | None = None) -> bool:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_http(url: str, process: subprocess.Popen, what: str, log: Path) -> float:
    """Seconds until ``url`` answers 200; exits with the log tail if it never does."""
    started = time.monotonic()
    while time.monotonic() - started < START_TIMEOUT_S:
        if _get_ok(url):
            return time.monotonic() - started
        if process.poll() is not None:
            break
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(
        f"{what} did not answer {url} within {START_TIMEOUT_S} s. Log {log}:\n{tail}"
    )


# -- fake OpenAI server --------------------------------------------------------------------


class FakeProcess:
    """The fake OpenAI server in a child process (bench/sse_fake_server.py)."""

    def __init__(self, children: Children) -> None:
        self.process = children.popen(
            "fake-openai",
            [sys.executable, str(ROOT / "bench" / "sse_fake_server.py")],
            log=None,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url = self._line()
        if not self.base_url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"fake server did not start (said {self.base_url!r})")

    def _line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def _command(self, text: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        return self._line()

    def pace(self, count: int, interval: float) -> None:
        assert self._command(f"pace {count} {interval}") == "ok"

    def requests_by_path(self) -> dict[str, int]:
        return json.loads(self._command("stats"))

    def reset(self) -> None:
        assert self._command("reset") == "ok"


# -- our project -----------------------------------------------------------------------------


def start_database(children: Children) -> tuple[str, object]:
    """A throw-away in-memory SecantusDB, as tests/pytest_embedded_mongo.py starts one."""
    from llmplatform.embedded.server import spawn_server

    WORKDIR.mkdir(parents=True, exist_ok=True)
    server = spawn_server(
        storage_path=":memory:",
        ready_file=WORKDIR / "secantus.json",
        log_file=WORKDIR / "secantus.log",
        exit_with_parent=True,
    )
    return server.uri, server


def project_env(
    *, fake_base_url: str, mongodb_uri: str, redis_url: str | None, embedding: str
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith("_API_KEY") and key not in ("REDIS_URL", "MONGODB_URI", "MONGO_DB")
    }
    env.update(
        {
            "LLMPLATFORM_SKIP_DOTENV": "1",
            "MONGODB_URI": mongodb_uri,
            "MONGO_DB": "sse_bench",
            "OPENAI_API_KEY": "sk-bench-not-a-real-key",
            "OPENAI_BASE_URL": fake_base_url,
            "DEFAULT_MODEL_PROVIDER": "openai",
            "LOCAL_MODEL_ENABLED": "false",
            # auto = OpenAI embeddings (the fake's) since a key is set: what production runs.
            "EMBEDDING_PROVIDER": embedding,
            "LOG_FILE": "",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
        # Concurrent test runs share this Redis: the bench's worker takes only its own tasks.
        env["CELERY_KEY_PREFIX"] = f"sse-bench-{os.getpid()}:"
    return env


def in_process_project(
    children: Children, *, name: str, env: dict[str, str] | None = None, before_setup=None
) -> tuple[object, object, list[tuple[bytes, bytes]]]:
    """This process set up as the project on its embedded defaults (no REDIS_URL), for
    benches that call the ASGI application directly: the fake OpenAI server and a
    throw-away SecantusDB (child processes), ``env`` on top, ``before_setup()`` run just
    before ``django.setup()``, migrated, with an API key of a new user ``name-…``.

    Returns (the database, to stop; the ASGI application; an SSE request's headers with
    that key).
    """
    fake = FakeProcess(children)
    fake.pace(20, 0.0)
    mongodb_uri, database = start_database(children)
    try:
        os.environ.update(
            project_env(
                fake_base_url=fake.base_url,
                mongodb_uri=mongodb_uri,
                redis_url=None,
                embedding="auto",
            )
        )
        os.environ.pop("REDIS_URL", None)
        os.environ.update(env or {})
        os.environ["DJANGO_SETTINGS_MODULE"] = "llmplatform.settings"
        import django

        if before_setup is not None:
            before_setup()
        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from llmplatform.core.services import api_key_create

        call_command("migrate", interactive=False, verbosity=0)
        user = get_user_model().objects.create_user(username=f"{name}-{os.urandom(3).hex()}")
        _, raw_key = api_key_create(owner=user, name=name)
        # Last: importing the application starts the embedded runtime, which needs the
        # migrated database.
        from config.asgi import application
    except BaseException:
        database.stop()
        raise
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/json"),
        (b"accept", b"text/event-stream"),
        (b"authorization", f"Bearer {raw_key}".encode()),
    ]
    return database, application, headers


def manage(env: dict[str, str], *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{completed.stderr[-3000:]}")
    return completed.stdout


def _own_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the ")" that ends the command name: field 14 (utime) is index 11, 15 (stime) 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found.append(child)
            found.extend(_descendants(child))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants (all threads), from
    /proc; 0 if it is gone. Descendants count because granian serves from a child worker.
    (A descendant that exits between two readings takes its time with it: none does here.)"""
    return _own_cpu_seconds(pid) + sum(_own_cpu_seconds(child) for child in _descendants(pid))


def start_asgi_server(
    children: Children, env: dict[str, str], name: str, server: str, *, app: str = ""
) -> tuple[str, int, float, int]:
    """``server`` serving the project (tests/processes.py's command, access log off as
    ``manage.py serve`` runs it outside DEBUG); (host, port, seconds to ready, pid)."""
    port = free_port()
    log = WORKDIR / f"{name}.log"
    process = children.popen(
        name,
        asgi_server_command(server, port=port, access_log=False, app=app or ASGI_APPLICATION),
        log=log,
        cwd=ROOT,
        env=env,
    )
    seconds = wait_http(f"http://127.0.0.1:{port}/api/v1/health", process, server, log)
    return "127.0.0.1", port, seconds, process.pid


def start_celery(children: Children, env: dict[str, str], concurrency: int) -> subprocess.Popen:
    log = WORKDIR / "celery-worker.log"
    process = children.popen(
        "celery-worker",
        celery_worker_command(name=f"sse-bench-{os.getpid()}", concurrency=concurrency),
        log=log,
        cwd=ROOT,
        env=env,
    )
    started = time.monotonic()
    while time.monotonic() - started < START_TIMEOUT_S:
        if "ready." in log.read_text(errors="replace"):
            return process
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"the Celery worker did not become ready; see {log}")


# -- LiteLLM ---------------------------------------------------------------------------------


class LiteLLMUnavailable(RuntimeError):
    """LiteLLM could not be installed or started here; the message says why."""


def ensure_litellm_venv(spec: str) -> tuple[Path, str]:
    """The LiteLLM virtualenv (created on first use, reused after) and its litellm version.

    A separate venv: litellm[proxy] pins many packages that must not touch the project's.
    """
    python = LITELLM_VENV / "bin" / "python"
    marker = LITELLM_VENV / "bench-spec.txt"

    def installed_version() -> str | None:
        if not python.exists():
            return None
        check = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return check.stdout.strip() if check.returncode == 0 else None

    version = installed_version()
    if version and marker.exists() and marker.read_text().strip() == spec:
        return LITELLM_VENV, version
    progress(
        f"installing {spec} into {LITELLM_VENV} (once; about a minute, at most "
        f"{LITELLM_INSTALL_TIMEOUT_S} s) ..."
    )
    if not python.exists():
        base = getattr(sys, "_base_executable", sys.executable)
        created = subprocess.run(
            [base, "-m", "venv", str(LITELLM_VENV)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if created.returncode != 0:
            raise LiteLLMUnavailable(f"could not create {LITELLM_VENV}: {created.stderr[-1500:]}")
    log = WORKDIR / "litellm-install.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("w") as out:
            install = subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", spec],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=LITELLM_INSTALL_TIMEOUT_S,
                check=False,
            )
    except subprocess.TimeoutExpired:
        raise LiteLLMUnavailable(
            f"pip install {spec} took over {LITELLM_INSTALL_TIMEOUT_S} s; see {log}"
        ) from None
    if install.returncode != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise LiteLLMUnavailable(f"pip install {spec} failed (exit {install.returncode}): {tail}")
    version = installed_version()
    if not version:
        raise LiteLLMUnavailable(f"{spec} installed but `import litellm` fails; see {log}")
    marker.write_text(spec + "\n")
    progress(f"litellm {version} installed")
    return LITELLM_VENV, version


# The proxy refuses to start without a master key; this one guards a loopback port for minutes.
LITELLM_MASTER_KEY = "sk-bench-" + "5e" * 16


def start_litellm(
    children: Children, venv: Path, fake_base_url: str
) -> tuple[str, int, float, int]:
    """``litellm --config`` with one model pointed at the fake server; no DB, no telemetry."""
    config = WORKDIR / "litellm-config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: gpt-4o-mini\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: {fake_base_url}\n"
        "      api_key: sk-bench-not-a-real-key\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  set_verbose: false\n"
        "  callbacks: []\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_MASTER_KEY}\n"
        "  disable_spend_logs: true\n"
    )
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "PYTHONPATH") and not key.endswith("_API_KEY")
    }
    # No outbound fetch of the model price map at start (there is no network here anyway).
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"})
    log = WORKDIR / "litellm.log"
    executable = venv / "bin" / "litellm"
    if not executable.exists() or shutil.which(str(executable)) is None:
        raise LiteLLMUnavailable(f"{executable} is missing")
    process = children.popen(
        "litellm",
        [str(executable), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        log=log,
        cwd=WORKDIR,
        env=env,
    )
    try:
        seconds = wait_http(
            f"http://127.0.0.1:{port}/health/liveliness", process, "the LiteLLM proxy", log
        )
    except RuntimeError as exc:
        raise LiteLLMUnavailable(str(exc)) from None
    return "127.0.0.1", port, seconds, process.pid
