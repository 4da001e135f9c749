"""A first run of `manage.py serve` on the embedded default, as a new user sees it.

The one-time credentials come last (after the server's start-up logging), in a box that
says what logs in where, and in FIRST_RUN_FILE (0600) until the first login; idle
background sweeps log nothing at INFO; loading a page and its static files under ASGI
warns about nothing.
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from llmplatform.core.periodic_logging import QuietIdleSweeps, did_nothing
from llmplatform.embedded.leases import ATTACHED_URI_ENV
from tests.live_services import stop_process
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 90.0
BOX_END = "that file is deleted at the first successful login."
SYNC_ITERATOR_WARNING = "StreamingHttpResponse must consume synchronous iterators"


# ----- the filter that quiets idle sweeps -----


def _success_record(task: str, return_value: str) -> logging.LogRecord:
    context = {"id": "1", "name": task, "return_value": return_value, "runtime": 0.01}
    return logging.LogRecord(
        "celery.app.trace", logging.INFO, __file__, 1, "Task %(name)s succeeded: %(return_value)s",
        (context,), None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("task", "return_value", "kept_at"),
    [
        ("queries.sweep_runs", "0", None),
        ("files.sweep_ingestions", "0", None),
        ("sessions.end_idle", "0", None),
        ("analytics.fold_rollups", "'folded until 2026-01-01T00:00:00+00:00 (0 queries)'", None),
        ("queries.sweep_runs", "2", logging.INFO),
        (
            "analytics.fold_rollups",
            "'folded until 2026-01-01T00:00:00+00:00 (7 queries)'",
            logging.INFO,
        ),
        ("queries.run", "0", logging.INFO),  # not a scheduled task: left alone
    ],
)
def test_idle_sweeps_log_nothing_at_info(task, return_value, kept_at):
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert (task in scheduled) is (task != "queries.run")
    record = _success_record(task, return_value)
    kept = QuietIdleSweeps().filter(record)
    logger = logging.getLogger("celery.app.trace")
    if kept_at is None:
        # Demoted to DEBUG: dropped unless the logger lets DEBUG through.
        assert record.levelno == logging.DEBUG
        assert kept is logger.isEnabledFor(logging.DEBUG)
    else:
        assert kept is True and record.levelno == kept_at


def test_did_nothing_reads_the_last_number():
    assert did_nothing("0") and did_nothing("'done (0 queries)'")
    assert not did_nothing("10") and not did_nothing("None")


# ----- a real first run -----


class Serve:
    def __init__(self, process: subprocess.Popen[bytes], log: Path, url: str) -> None:
        self.process, self.log, self.url = process, log, url

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, condition: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + WAIT_S
        while True:
            output = self.output()
            if condition(output):
                return output
            assert self.process.poll() is None, f"serve exited:\n{output}"
            if time.monotonic() > deadline:
                pytest.fail(f"gave up waiting for {what}:\n{output[-4000:]}")
            time.sleep(0.1)


@pytest.fixture
def first_run(tmp_path) -> Iterator[tuple[Serve, Path]]:
    data_dir = tmp_path / "mongo"
    first_run_file = tmp_path / "var" / "first-run.txt"
    (tmp_path / "first_run_settings.py").write_text(
        "from llmplatform.settings import *  # noqa: F403\n"
        f"EMBEDDED_MONGO_DIR = {str(data_dir)!r}\n"
        f"FIRST_RUN_FILE = {str(first_run_file)!r}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", ATTACHED_URI_ENV)}
    port = free_port()
    env.update(
        PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path}",
        DJANGO_SETTINGS_MODULE="first_run_settings",
        LLMPLATFORM_SKIP_DOTENV="1",
        ENVIRONMENT="development",
        REDIS_URL="",  # the embedded default: the sweeps run in-process
        LOG_LEVEL="DEBUG",  # so the idle sweeps' lines are seen, at DEBUG
        LOG_FILE="",
        UPLOAD_DIR=str(tmp_path / "uploads"),
        PORT=str(port),
        PYTHONWARNINGS="default",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Serve(process, log, f"http://127.0.0.1:{port}"), first_run_file
    finally:
        stop_process(process)
        try:
            pid = int(json.loads((data_dir / "server.json").read_text())["pid"])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass


def _get(opener: urllib.request.OpenerDirector, url: str) -> str:
    with opener.open(url, timeout=30) as response:
        return response.read().decode(errors="replace")


@pytest.mark.slow
def test_first_run_shows_the_credentials_last_and_keeps_them_until_the_first_login(first_run):
    serve, first_run_file = first_run
    output = serve.wait_for(
        lambda out: BOX_END in out and "Uvicorn running on" in out,
        "the server to start and show the first-run credentials",
    )

    # Last: after the server's own start-up logging, in a box.
    box = output[output.index("\n+--") :]
    assert output.index("Uvicorn running on") < output.index("\n+--")
    assert "password:" in box and "Authorization: Bearer" in box
    assert "log in to the chat page" in box and "API key" in box
    assert "does not log in" in box  # the key is for API requests, not for the login form
    assert str(first_run_file) in box
    password = re.search(r"password:\s+(\S+)", box).group(1)
    api_key = re.search(r"API key:\s+(\S+)", box).group(1)

    # Also in the file, readable by its owner only.
    assert first_run_file.stat().st_mode & 0o777 == 0o600
    assert password in first_run_file.read_text() and api_key in first_run_file.read_text()

    # A page load with its static files warns about nothing; the health request after
    # them marks where their output would be.
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    login_page = _get(opener, f"{serve.url}/login/")
    for path in re.findall(r'(?:href|src)="(/static/[^"]+)"', login_page):
        _get(opener, f"{serve.url}{path}")
    assert re.search(r'(?:href|src)="/static/', login_page)
    _get(opener, f"{serve.url}/api/v1/health")
    output = serve.wait_for(lambda out: "GET /api/v1/health" in out, "the health request")
    assert SYNC_ITERATOR_WARNING not in output

    # The sweeps ran (the scheduler runs each at start) and found nothing: DEBUG only.
    output = serve.wait_for(
        lambda out: "Task sessions.end_idle[" in out and "Task queries.sweep_runs[" in out,
        "the first sweeps",
    )
    for line in output.splitlines():
        if line.startswith("{") and "succeeded in" in line:
            entry = json.loads(line)
            assert entry["level"] == "DEBUG", line

    # The first successful login deletes the file.
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": "admin", "password": password}
    ).encode()
    with opener.open(f"{serve.url}/login/", data=form, timeout=30) as response:
        assert "/login/" not in response.url  # logged in: sent on to the chat page
    assert not first_run_file.exists()
