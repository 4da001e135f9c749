"""Event ingestion throughput through POST /api/v1/session/events, and assignment cost.

Runs against a fresh embedded SecantusDB (started like the tests start theirs) through
Django's test client, so it measures the view, the service and the database, not HTTP.

    .venv/bin/python bench/session_events.py [--batches 10] [--batch-size 500]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _start_database() -> object:
    from llmplatform.embedded.server import spawn_server

    workdir = Path(tempfile.mkdtemp(prefix="bench-session-events-"))
    server = spawn_server(
        storage_path=":memory:",
        ready_file=workdir / "server.json",
        log_file=workdir / "secantus.log",
        exit_with_parent=True,
    )
    os.environ["MONGODB_URI"] = server.uri
    return server


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--assignments", type=int, default=20_000)
    args = parser.parse_args()
    os.environ.update(
        LLMPLATFORM_SKIP_DOTENV="1",
        ENVIRONMENT="test",
        LOG_FILE="",
        LOG_LEVEL="WARNING",
        MONGO_DB="bench_session_events",
    )
    os.environ.pop("REDIS_URL", None)
    server = _start_database()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmplatform.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from llmplatform.core.services import api_key_create
    from sessions.assignment import variant_for_user
    from sessions.models import Event

    owner = get_user_model().objects.create(username="bench")
    _, raw_key = api_key_create(owner=owner, name="bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    client.post("/api/v1/session/start", {"session_id": "bench", "user_id": "u"}, format="json")

    timings = []
    for batch in range(args.batches):
        events = [
            {"id": f"b{batch}-{i}", "t": 1_700_000_000_000 + i, "type": "click", "data": {"i": i}}
            for i in range(args.batch_size)
        ]
        started = time.perf_counter()
        response = client.post(
            "/api/v1/session/events", {"session_id": "bench", "events": events}, format="json"
        )
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200 and response.json()["stored"] == args.batch_size
    started = time.perf_counter()
    resend = client.post(
        "/api/v1/session/events", {"session_id": "bench", "events": events}, format="json"
    )
    resend_s = time.perf_counter() - started
    assert resend.json()["duplicates"] == args.batch_size
    assert Event.objects.filter(owner=owner).count() == args.batches * args.batch_size

    variants = [
        {"name": "control", "weight": 50},
        {"name": "b", "weight": 30},
        {"name": "c", "weight": 20},
    ]
    started = time.perf_counter()
    for i in range(args.assignments):
        variant_for_user(
            owner_id=str(owner.pk), user_id=f"user-{i}", experiment_key="exp", variants=variants
        )
    assign_us = (time.perf_counter() - started) / args.assignments * 1e6

    started = time.perf_counter()
    for i in range(20):
        client.post(
            "/api/v1/session/start", {"session_id": f"s{i}", "user_id": f"u{i}"}, format="json"
        )
    start_ms = (time.perf_counter() - started) / 20 * 1000

    total = args.batches * args.batch_size
    print("| metric | value |")
    print("|---|---|")
    print(f"| events stored | {total} in {args.batches} batches of {args.batch_size} |")
    print(f"| ingestion throughput | {total / sum(timings):,.0f} events/s |")
    print(
        f"| batch latency median / max | {statistics.median(timings) * 1000:.0f} ms / "
        f"{max(timings) * 1000:.0f} ms |"
    )
    print(f"| re-sent batch (all duplicates) | {resend_s * 1000:.0f} ms |")
    print(f"| assignment, 1 experiment with 3 variants | {assign_us:.2f} µs per user |")
    print(
        f"| POST /session/start (1 running experiment lookup, no experiments) | {start_ms:.1f} ms |"
    )
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
