"""Document ingestion throughput, and what it does to a concurrent question's time to
first token.

    .venv/bin/python bench/documents_ingest.py --pages 200 --write

One PDF of ``--pages`` pages (fpdf2; generating it is not timed), stored as an upload on
a throw-away embedded SecantusDB, then ingested the way the background task does it
(``files.ingestion.document_ingest``: read the bytes, pypdf text page by page, chunk to
the local embedder's window, embed with all-MiniLM-L6-v2 on the CPU, write the chunks).
Then each stage alone on the same input, to say where the time goes, with wall and CPU
seconds: the embedding both as ingestion runs it (``embed_bulk``: one passage per call on
the background session) and as a request would (``embed``: batches of 32). ``--repeat``
runs the whole ingestion that many times (median).

Then questions: another account asks ``POST /api/v1/query/stream`` (memory on, as users
send it; the fake OpenAI server answers; the question is embedded by the same local
embedder) through the project's ASGI application in this process, one at a time, first
idle, then while a ``--concurrent-pages`` PDF (500: the page limit) is ingested on the
in-process dispatcher's background thread, exactly as an upload queues it. TTFT is the
request handed to the application → its first answer chunk frame. Not a test: nothing is
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid

from documents_common import (
    RESULTS,
    document_pages,
    make_pdf,
    percentile,
    planted_facts,
    stamp,
    start_django,
    store_pdf,
)
from sse_stack import Children, FakeProcess

RESULT_FILE = RESULTS / "documents_ingest.md"
MODEL = "gpt-4o-mini"
QUESTION_GAP_S = 0.05


class Asker:
    """One account's questions through the ASGI application; TTFT in ms per question."""

    def __init__(self) -> None:
        from django.contrib.auth import get_user_model

        from config.asgi import application
        from llmplatform.core.services import api_key_create

        owner = get_user_model().objects.create_user(username=f"asker-{uuid.uuid4().hex[:6]}")
        _, raw_key = api_key_create(owner=owner, name="asker")
        self.app = application
        self.headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"accept", b"text/event-stream"),
            (b"authorization", f"Bearer {raw_key}".encode()),
        ]
        self.loop = asyncio.new_event_loop()
        self.asked = 0

    def ask(self) -> float:
        self.asked += 1
        body = {
            "user_id": "asker",
            "session_id": f"asker-{self.asked // 4}",
            "query": f"Question {self.asked}: what does the warranty clause say?",
            "model_provider": "openai",
            "model_name": MODEL,
        }
        return self.loop.run_until_complete(self._first_chunk_ms(json.dumps(body).encode()))

    async def _first_chunk_ms(self, body: bytes) -> float:
        delivered = False
        disconnected = asyncio.Event()
        done = asyncio.Event()
        first_chunk: list[float] = []

        async def receive() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] != "http.response.body":
                return
            data = message.get("body", b"")
            if b'"type": "chunk"' in data and not first_chunk:
                first_chunk.append(time.perf_counter())
            if b'"type": "done"' in data or not message.get("more_body", False):
                done.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/v1/query/stream",
            "raw_path": b"/api/v1/query/stream",
            "query_string": b"",
            "root_path": "",
            "headers": self.headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        started = time.perf_counter()
        task = asyncio.ensure_future(self.app(scope, receive, send))
        await asyncio.wait_for(done.wait(), timeout=60)
        disconnected.set()
        await asyncio.wait_for(task, timeout=10)
        if not first_chunk:
            raise SystemExit("a question got no answer chunk")
        return (first_chunk[0] - started) * 1000


def _stages(data: bytes, embedder) -> list[tuple[str, float, float]]:
    """(stage, wall s, CPU s of this process) for each stage alone."""
    from files.chunking import chunk_pages
    from files.config import documents_config
    from files.extraction import extract_pages
    from llmplatform.core.bridge import run_sync

    rows = []

    def timed(name, func):
        wall, cpu = time.perf_counter(), time.process_time()
        result = func()
        rows.append((name, time.perf_counter() - wall, time.process_time() - cpu))
        return result

    deadline = time.monotonic() + documents_config().ingest_timeout_s
    pages = timed(
        "pypdf text extraction",
        lambda: extract_pages(
            data=data, content_type="application/pdf", max_pages=10_000, deadline=deadline
        ),
    )
    passages = timed(
        "chunking (WordPiece counting)", lambda: list(chunk_pages(pages, model=embedder.model))
    )
    texts = [p.text for p in passages]
    # getattr: the same bench measures a revision from before embed_bulk existed.
    embed_bulk = getattr(embedder, "embed_bulk", embedder.embed)
    timed(
        "embedding as ingestion does (embed_bulk: one passage per call, 1 thread)",
        lambda: run_sync(embed_bulk(texts)),
    )
    timed(
        "embedding in batches of 32 (embed: the request session, all cores)",
        lambda: run_sync(embedder.embed(texts)),
    )
    return rows


def _questions(asker: Asker, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        samples.append(asker.ask())
        time.sleep(QUESTION_GAP_S)
    return samples


def _during_ingestion(asker: Asker, owner, data: bytes) -> tuple[list[float], float, int]:
    """TTFTs of questions asked while ``data`` is ingested in the background; the
    ingestion's wall seconds; how many questions were answered before it ended."""
    from files.models import File
    from files.services import document_ingest_queue

    file = store_pdf(owner, "u2", "long.pdf", data)
    document_ingest_queue(file=file)
    samples: list[float] = []
    answered_at: list[float] = []
    while True:
        status = File.objects.values_list("ingestion_status", flat=True).get(pk=file.pk)
        if status in (File.Ingestion.READY, File.Ingestion.FAILED):
            break
        samples.append(asker.ask())
        answered_at.append(time.time())
        time.sleep(QUESTION_GAP_S)
    file.refresh_from_db()
    if file.ingestion_status != File.Ingestion.READY:
        raise SystemExit(f"ingestion failed: {file.ingestion_error}")
    ended = file.ingestion_finished_at.timestamp()
    before_end = sum(1 for at in answered_at if at < ended)
    return samples, ended - file.ingestion_queued_at.timestamp(), before_end


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--questions", type=int, default=30, help="idle questions")
    parser.add_argument("--concurrent-pages", type=int, default=500)
    parser.add_argument("--write", action="store_true", help=f"write {RESULT_FILE}")
    args = parser.parse_args()

    children = Children()
    try:
        fake = FakeProcess(children)
        fake.pace(20, 0.0)
        os.environ.pop("REDIS_URL", None)  # the in-process dispatcher, as embedded
        os.environ.update(
            {
                "OPENAI_API_KEY": "sk-bench-not-a-real-key",
                "OPENAI_BASE_URL": fake.base_url,
                "DEFAULT_MODEL_PROVIDER": "openai",
                "LOCAL_MODEL_ENABLED": "false",
            }
        )
        start_django("bench-documents-ingest-")  # EMBEDDING_PROVIDER=local
        return _run(args)
    finally:
        children.stop_all()


def _run(args: argparse.Namespace) -> int:
    from django.contrib.auth import get_user_model

    from agents.providers.embeddings import get_embedder
    from files.ingestion import document_ingest
    from files.models import DocumentChunk, File
    from llmplatform.core.bridge import run_sync

    owner, _ = get_user_model().objects.get_or_create(username="ingest-bench")
    facts = planted_facts(args.pages, pages_per_document=args.pages)
    data = make_pdf(document_pages(facts, 0, args.pages, seed=1))
    embedder = get_embedder()
    # Loading the model (both sessions) is not ingestion.
    run_sync(embedder.embed(["warm up the model"]))
    run_sync(getattr(embedder, "embed_bulk", embedder.embed)(["warm up the model"]))
    load_before = os.getloadavg()[0]

    totals, cpu_totals = [], []
    for attempt in range(args.repeat):
        file = store_pdf(owner, "u1", f"report-{attempt}.pdf", data)
        started, cpu_started = time.perf_counter(), time.process_time()
        document_ingest(file_id=str(file.pk))
        totals.append(time.perf_counter() - started)
        cpu_totals.append(time.process_time() - cpu_started)
        file.refresh_from_db()
        if file.ingestion_status != File.Ingestion.READY:
            raise SystemExit(f"ingestion failed: {file.ingestion_error}")
    chunks = DocumentChunk.objects.filter(file_id=file.pk).count()
    stages = _stages(data, embedder)
    total = statistics.median(totals)
    alone = sum(wall for name, wall, _ in stages if "batches of 32" not in name)
    rest = max(0.0, total - alone)

    asker = Asker()
    _questions(asker, 5)  # warm-up: first requests import and connect
    # Idle: half before the long ingestion, half after, so the machine's drift in load
    # weighs on both sides alike.
    idle = _questions(asker, args.questions // 2)
    long_data = make_pdf(document_pages(facts, 0, args.concurrent_pages, seed=2))
    during, long_s, before_end = _during_ingestion(asker, owner, long_data)
    idle += _questions(asker, args.questions - args.questions // 2)
    load_after = os.getloadavg()[0]

    lines = [
        f"{args.pages}-page PDF ({len(data) / 1024:.0f} KiB), {chunks} chunks, "
        f"{os.cpu_count()} CPUs shared with other work (load average {load_before:.1f} "
        f"before, {load_after:.1f} at the end).",
        "",
        "| stage | seconds | CPU seconds (this process, all its threads) | pages/s |",
        "|---|---|---|---|",
        f"| whole ingestion (document_ingest) | {total:.2f} | "
        f"{statistics.median(cpu_totals):.2f} | {args.pages / total:.1f} |",
        *(
            f"| {name} | {wall:.2f} | {cpu:.2f} | {args.pages / wall:.1f} |"
            for name, wall, cpu in stages
        ),
        f"| the rest: reading bytes, progress writes, storing chunks | {rest:.2f} | — | "
        f"{f'{args.pages / rest:.1f}' if rest else '— (within the noise)'} |",
        "",
        "Time to first token of another account's question (`/api/v1/query/stream`, memory "
        "on, local embedder, fake OpenAI; ms):",
        "",
        "| when | questions | p50 | p95 | max |",
        "|---|---|---|---|---|",
        *(
            f"| {when} | {len(samples)} | {statistics.median(samples):.1f} | "
            f"{percentile(samples, 95):.1f} | {max(samples):.1f} |"
            for when, samples in (
                ("idle", idle),
                (f"during a {args.concurrent_pages}-page ingestion", during),
            )
            if samples
        ),
        "",
        f"The {args.concurrent_pages}-page ingestion took {long_s:.1f} s "
        f"({args.concurrent_pages / long_s:.1f} pages/s while answering); {before_end} "
        "questions were answered before it ended; TTFT p50 during / idle = "
        f"{statistics.median(during) / statistics.median(idle):.2f}x."
        if during
        else f"The {args.concurrent_pages}-page ingestion ended before a question was asked.",
    ]
    output = "\n".join(lines)
    print(output)
    if args.write:
        RESULT_FILE.write_text(
            "# Document ingestion throughput (bench/documents_ingest.py)\n\n"
            f"`.venv/bin/python bench/documents_ingest.py --pages {args.pages} "
            f"--repeat {args.repeat} --write`, {stamp()}, embedded SecantusDB, local "
            "embedder on the CPU, in-process dispatcher.\n\n" + output + "\n"
        )
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # Not a normal exit: the in-process background thread still holds the questions'
    # after-completion work (summaries), whose provider, the fake server, is gone; an
    # interpreter exit would wait for every one of them to fail its retries.
    os._exit(code)
