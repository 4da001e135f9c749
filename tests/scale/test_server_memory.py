"""The embedded server's malloc bound (launcher ``bound_malloc``): still needed, and works.

What grows in SecantusDB under load is memory glibc keeps after it was freed (per-thread
arenas), not live data. Measured as resident size after the same workload, with glibc's
defaults (``--malloc-arenas 0 --trim-interval 0``) and with the launcher's bound. Not a
timing: the two sizes are compared with each other.
"""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pymongo
import pytest

from llmplatform.embedded.server import spawn_server

THREADS = 6
DOCUMENTS_PER_THREAD = 300
TRIM_INTERVAL_S = 0.2


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _workload(uri: str) -> None:
    client = pymongo.MongoClient(uri, maxPoolSize=THREADS)
    collection = client.db.queries
    rng = np.random.default_rng(0)

    def one(thread: int) -> None:
        docs = [
            {"thread": thread, "n": n, "embedding": rng.normal(size=384).tolist()}
            for n in range(DOCUMENTS_PER_THREAD)
        ]
        for start in range(0, len(docs), 50):
            collection.insert_many(docs[start : start + 50])
        for _ in range(3):
            assert len(list(collection.find({"thread": thread}))) == DOCUMENTS_PER_THREAD

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(THREADS)))
    client.close()


def _resident_after_workload(tmp_path, name: str, extra_args: list[str]) -> float:
    server = spawn_server(
        storage_path=str(tmp_path / name),
        ready_file=tmp_path / f"{name}.json",
        log_file=tmp_path / f"{name}.log",
        exit_with_parent=True,
        extra_args=["--trim-interval", str(TRIM_INTERVAL_S), *extra_args],
    )
    try:
        _workload(server.uri)
        time.sleep(TRIM_INTERVAL_S * 5)
        return _rss_mb(server.pid)
    finally:
        server.stop()


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc (Linux)")
def test_malloc_bound_is_still_needed_and_keeps_the_server_smaller(tmp_path):
    glibc_defaults = _resident_after_workload(
        tmp_path, "defaults", ["--malloc-arenas", "0", "--trim-interval", "0"]
    )
    bounded = _resident_after_workload(tmp_path, "bounded", [])
    print(f"resident after the workload: {glibc_defaults:.0f} MB -> {bounded:.0f} MB")
    # When upstream returns freed memory itself, the two converge: drop the bound. (Alone
    # the gap is ~20-25%; under a loaded machine it shrank to 8%, so only the direction is
    # asserted.)
    assert bounded < glibc_defaults, (bounded, glibc_defaults)


def test_memory_report_on_sigusr1(tmp_path):
    server = spawn_server(
        storage_path=":memory:",
        ready_file=tmp_path / "r.json",
        log_file=tmp_path / "r.log",
        exit_with_parent=True,
    )
    try:
        os.kill(server.pid, signal.SIGUSR1)
        for _ in range(100):
            text = (tmp_path / "r.log").read_text()
            if text.rstrip().endswith("}"):
                break
            time.sleep(0.1)
        report = json.loads(text[text.index("{") :])
        assert report["rss_mb"] > 0 and "malloc_free_held_mb" in report
    finally:
        server.stop()
