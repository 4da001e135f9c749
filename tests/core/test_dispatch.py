"""The dispatcher runs work by its task name and imports no app.

An app registers the in-process runner of its task name at start-up (``queries`` registers
``queries.run_query``); the Celery branch sends the name to its queue. So nothing low has
to sit above the app that owns the work to have it run in the background, and an edge
that follows a run does not import the runner.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

import grimp
import pytest

from llmplatform.celery import app as celery_app
from llmplatform.core import dispatch, tracing
from llmplatform.core.dispatch import dispatcher, register_runner

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = sorted(
    path.name
    for path in ROOT.iterdir()
    if (path / "__init__.py").is_file() and path.name not in ("tests", "bench")
)


@pytest.fixture
def runners(monkeypatch):
    """A registry of this test's own, so the apps' runners are left as they are."""
    monkeypatch.setattr(dispatch, "_runners", dict(dispatch._runners))


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, list, str]]:
    """What the Celery app is asked to send: (task name, args, queue)."""
    calls: list[tuple[str, list, str]] = []

    def send_task(name: str, *, args: list, queue: str, kwargs: dict | None = None) -> None:
        calls.append((name, args, queue, *([kwargs] if kwargs else [])))

    monkeypatch.setattr(celery_app, "send_task", send_task)
    return calls


@pytest.mark.usefixtures("runners")
def test_in_process_a_run_is_the_runner_registered_under_its_name(settings):
    settings.REDIS_URL = None
    ran: Future[tuple] = Future()
    record = object()  # what this process holds already: handed over, not reloaded

    async def runner(*ids: str, **handover: object) -> None:
        ran.set_result((ids, handover, threading.current_thread().name))

    register_runner("tests.echo", runner)
    dispatcher().submit_run("tests.echo", "id-1", "id-2", record=record)

    ids, handover, thread = ran.result(timeout=10)
    assert ids == ("id-1", "id-2")
    assert handover["record"] is record
    assert thread == "query-runs"  # the runs' loop, never the caller's thread


@pytest.mark.usefixtures("runners")
def test_in_process_a_run_nobody_registered_is_refused_by_name(settings):
    settings.REDIS_URL = None
    with pytest.raises(LookupError, match=r"tests\.unknown"):
        dispatcher().submit_run("tests.unknown", "id-1")


def test_with_celery_the_name_goes_to_its_queue_and_the_handover_stays_here(settings, sent):
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    runs = dispatcher()

    runs.submit_run("queries.run_query", "q1", query=object())
    runs.submit_background("files.ingest_document", "f1")

    assert not runs.starts_runs_at_once
    assert sent == [
        ("queries.run_query", ["q1"], "agents"),
        ("files.ingest_document", ["f1"], "default"),
    ]


def test_with_celery_a_run_carries_the_trace_it_was_submitted_in(settings, sent):
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    with tracing.span("query.start") as start:
        dispatcher().submit_run("queries.run_query", "q1")
    [(_, _, _, kwargs)] = sent
    trace_id, parent_id = kwargs["trace_context"]["traceparent"].split("-")[1:3]
    assert trace_id == tracing.trace_id_of(start)
    assert parent_id == format(start.get_span_context().span_id, "016x")


def test_queries_registers_its_run_at_start_up():
    from queries.run import query_execute
    from queries.start import RUN_TASK

    assert dispatch._runners[RUN_TASK] is query_execute


def _imported_by(module: str) -> set[str]:
    graph = grimp.build_graph(*PROJECT_PACKAGES, exclude_type_checking_imports=True)
    return graph.find_upstream_modules(module)


def test_the_dispatcher_imports_no_app():
    # Imports inside functions count: they are how a cycle hides.
    apps = {module.split(".")[0] for module in _imported_by("llmplatform.core.dispatch")}
    assert apps <= {"llmplatform"}


def test_what_an_edge_reads_of_a_run_imports_no_runner_and_no_engine():
    imported = _imported_by("queries.streams")
    assert "queries.run" not in imported
    assert not {module for module in imported if module.split(".")[0] == "agents"}
