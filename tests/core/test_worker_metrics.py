"""A real Celery worker (prefork pool, as in docker/compose.yml) serves its task metrics on
METRICS_WORKER_PORT, summed over its children through PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from bson import ObjectId
from prometheus_client.parser import text_string_to_metric_families

from queries.tasks import after_completion
from tests.live_services import stop_process
from tests.processes import free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def _samples(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_prefork_worker_serves_its_task_outcomes(child_env, tmp_path):
    port = free_port()
    queue = f"metrics-test-{uuid.uuid4().hex[:8]}"
    env = {
        **child_env,
        "METRICS_WORKER_PORT": str(port),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    command = [sys.executable, "-m", "celery", "-A", "llmplatform", "worker", "-Q", queue]
    command += ["--pool", "prefork", "--concurrency", "1", "-n", f"{queue}@%h", "-l", "INFO"]
    log = (tmp_path.parent / f"{queue}.log").open("w")
    worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/metrics"
    success = (
        "llmplatform_celery_tasks_total",
        (("outcome", "success"), ("task", "queries.after_completion")),
    )
    not_due = ("llmplatform_background_jobs_total", (("job", "summary"), ("outcome", "not_due")))
    try:
        # A query that does not exist: the summary task succeeds with nothing due.
        after_completion.apply_async(args=[str(ObjectId())], queue=queue)
        deadline = time.monotonic() + 180  # a loaded CI machine starts workers slowly
        samples: dict = {}
        while time.monotonic() < deadline and worker.poll() is None:
            try:
                samples = _samples(url)
            except OSError:
                samples = {}  # not listening yet
            if samples.get(success):
                break
            time.sleep(0.5)
        assert worker.poll() is None, f"the worker exited: see {log.name}"
        assert samples.get(success) == 1, f"no task outcome on {url}: see {log.name}"
        assert samples.get(not_due) == 1
        duration = ("llmplatform_celery_task_duration_seconds_count",)
        assert any(key[0] == duration[0] for key in samples)
        # Written by the child process, served by the parent: multiprocess files in the dir.
        assert any(tmp_path.glob("*.db"))
    finally:
        stop_process(worker)
        log.close()
