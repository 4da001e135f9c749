"""A worker SIGKILLed mid-stream: the query ends ``failed``/``worker_lost``, never stuck
``running``, and the stream that follows it ends with ``error`` + ``done``.

Real processes: daphne, a Celery worker that is killed, and a second worker with beat
embedded (the sweeper). Their own Celery key prefix keeps the session's worker from
taking this test's tasks. QUERY_TIMEOUT_S=20 makes the heartbeat 1 s and a run dead after
4 s without one.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx2
import pytest

from queries.models import Query
from tests.live_services import ROOT, sse_frames, start_daphne, stop_process
from tests.processes import celery_worker_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _worker(env: dict[str, str], name: str, *, beat: bool) -> tuple[subprocess.Popen, Path]:
    log_path = ROOT / "var" / f"test-worker-lost-{name}.log"
    command = celery_worker_command(name=f"{name}-{os.getpid()}", concurrency=2)
    if beat:
        schedule = Path(tempfile.mkdtemp(prefix="beat-")) / "schedule"
        command += ["--beat", "--schedule", str(schedule)]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "ready." not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the Celery worker did not start: see {log_path}")
        time.sleep(0.2)
    return process, log_path


def test_a_killed_worker_fails_its_run_and_ends_the_stream(
    child_env, vendor_settings, fakes, owner
):
    env = {
        **child_env,
        "QUERY_TIMEOUT_S": "20",
        "CELERY_KEY_PREFIX": f"worker-lost-{os.getpid()}:",
    }
    fakes["openai"].chunk_count = 40
    fakes["openai"].chunk_interval = 0.25  # a 10 s answer
    first, _ = _worker(env, "doomed", beat=False)
    server = start_daphne(env, ROOT / "var" / "test-worker-lost-daphne.log")
    second = None
    try:
        with httpx2.stream(
            "POST",
            f"{server.url}/api/v1/query/stream",
            json={
                "user_id": "u1",
                "session_id": "s1",
                "query": "Tell me a long story",
                "use_memory": False,
                "model_provider": "openai",
            },
            headers={"Authorization": f"Bearer {owner[1]}"},
            timeout=60,
        ) as response:
            assert response.status_code == 200
            events = []
            for frame in sse_frames(response):
                if frame.event is None:
                    continue
                events.append(frame.event)
                if frame.event["type"] == "chunk" and second is None:
                    first.kill()  # SIGKILL mid-stream: no chance to clean up
                    first.wait(timeout=10)
                    second, _ = _worker(env, "rescuer", beat=True)
                if frame.event["type"] == "done":
                    break
        query_id = events[0]["query_id"]
        assert [e["type"] for e in events[-2:]] == ["error", "done"]
        assert events[-2]["error"]["code"] == "worker_lost"
        stored = Query.objects.get(pk=query_id)
        assert stored.status == Query.Status.FAILED
        assert stored.error["code"] == "worker_lost"
    finally:
        for process in (first, second, server.process):
            if process is not None and process.poll() is None:
                stop_process(process)
