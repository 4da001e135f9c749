"""The server process's memory: bounding glibc's malloc, and reports on demand.

``bound_malloc`` runs in every launcher; ``--trace-memory`` traces Python allocations
and logs the commands that peak, and SIGUSR1 prints ``memory_report`` to the log.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any


def _malloc_info() -> dict[str, int]:
    """glibc's view of the heap: bytes in use, and bytes free but still held (mallinfo2)."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in [
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            ]
        ]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
    except (OSError, AttributeError):
        return {}
    info = libc.mallinfo2()
    return {"in_use": info.uordblks + info.hblkhd, "free_held": info.fordblks}


def memory_report(top: int = 25) -> dict[str, Any]:
    """RSS, the malloc heap, and (when tracing) the Python lines holding the most memory."""
    rss_kb = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    report: dict[str, Any] = {"rss_mb": rss_kb // 1024}
    report.update({f"malloc_{k}_mb": v // 2**20 for k, v in _malloc_info().items()})
    import tracemalloc

    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot()
        report["python_traced_mb"] = tracemalloc.get_traced_memory()[0] // 2**20
        report["top"] = [
            f"{stat.size / 2**20:8.1f} MB {stat.count:>9} blocks  {stat.traceback[0]}"
            for stat in snapshot.statistics("lineno")[:top]
        ]
    return report


# glibc's mallopt parameter number for the arena limit (malloc.h).
M_ARENA_MAX = -8
DEFAULT_MALLOC_ARENAS = 2
DEFAULT_TRIM_INTERVAL_S = 10.0


def bound_malloc(*, arenas: int, trim_interval_s: float, stopping: threading.Event) -> None:
    """Keep freed memory from piling up in the server process (glibc only; else nothing).

    What grows in SecantusDB is not live data: at 10k queries a traced run held 13 MB of
    Python objects and ~200 MB in malloc (WiredTiger's 256 MB cache filling), while
    another ~490 MB was free but kept by glibc. Each connection thread gets its own malloc
    arena (up to 8 per core), WiredTiger pages and decoded documents come and go in all of
    them, and a freed chunk returns to the system only from the top of the main heap. So
    the resident size ratchets up with every burst and never comes down. Fewer arenas
    share the holes; ``malloc_trim`` hands free pages in every arena back to the system.
    Call before any thread starts (the arena limit applies to arenas made afterwards).
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return
    if arenas > 0:
        mallopt(M_ARENA_MAX, arenas)
    if trim_interval_s <= 0:
        return

    def trim() -> None:
        while not stopping.wait(trim_interval_s):
            malloc_trim(0)

    threading.Thread(target=trim, name="malloc-trim", daemon=True).start()


def print_memory_report(_signum: int, _frame: object) -> None:
    print(json.dumps(memory_report(), indent=1), flush=True)


# A command whose Python allocations peak above this is logged by --trace-memory.
TRACE_COMMAND_PEAK_MB = 32


def trace_command_peaks() -> None:
    """Log each command that allocates more than TRACE_COMMAND_PEAK_MB at its peak.

    The peak is process-wide, so a command running alongside another one may be
    blamed for both: good enough to find the reads that materialise whole collections.
    """
    import tracemalloc

    from secantus import server

    original = server.dispatch

    def dispatch(doc: dict[str, Any], ctx: Any) -> dict[str, Any]:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        try:
            return original(doc, ctx)
        finally:
            peak_mb = (tracemalloc.get_traced_memory()[1] - before) / 2**20
            if peak_mb > TRACE_COMMAND_PEAK_MB:
                shown = {k: v for k, v in doc.items() if k not in ("lsid", "$clusterTime")}
                print(f"peak {peak_mb:.0f} MB: {repr(shown)[:600]}", flush=True)

    server.dispatch = dispatch
