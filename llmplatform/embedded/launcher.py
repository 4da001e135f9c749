"""Run the embedded SecantusDB server in its own process.

Started as ``python -m llmplatform.embedded.launcher`` (by ``server.spawn_server``).

SecantusDB is GPL-2.0 and this project is MIT, so it is never imported by the Django
process: the Django side starts this module as a child process and talks to it over the
MongoDB wire protocol like to any other server. Only this process applies the patches
(``patches``, ``ordered_window``) and bounds its memory (``memory``); nothing the ORM
sends to a real MongoDB is touched.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import sys
import threading
from pathlib import Path

from llmplatform.embedded.leases import LEASE_CHECK_S, live_leases
from llmplatform.embedded.memory import (
    DEFAULT_MALLOC_ARENAS,
    DEFAULT_TRIM_INTERVAL_S,
    bound_malloc,
    print_memory_report,
    trace_command_peaks,
)
from llmplatform.embedded.ordered_window import apply_ordered_window_patch
from llmplatform.embedded.patches import (
    apply_and_filter_index_patch,
    apply_nested_inclusion_project_patch,
    apply_union_with_documents_patch,
)

# The launcher's own default; the project passes settings.EMBEDDED_MONGO_CACHE_MB.
DEFAULT_CACHE_MB = 256


def _stop_when_orphaned(parent_pid: int, stopping: threading.Event) -> None:
    # A killed test run must not leave servers behind: re-parenting means our parent died.
    while not stopping.wait(1.0):
        if os.getppid() != parent_pid:
            stopping.set()


def _wait_until_unused(stopping: threading.Event, leases_dir: Path, lock_fd: int) -> None:
    """Return, holding ``lock_fd``'s lock, once signalled or when no live process holds a lease.

    Deciding and stopping under the lock means an attaching process either sees this
    server alive with its lease counted, or starts a new one after this one has closed
    its files (see the package docstring).
    """
    users: list[int] | None = None
    while True:
        stopping.wait(LEASE_CHECK_S)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        if stopping.is_set():
            return
        current = live_leases(leases_dir)
        if current != users:
            users = current
            held_by = ", ".join(map(str, users)) or "nobody: stopping"
            print(f"secantus launcher {os.getpid()}: leases held by {held_by}", flush=True)
        if not users:
            return
        fcntl.flock(lock_fd, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage-path", required=True, help="directory, or :memory:")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--ready-file", required=True, help="JSON {pid, port} written when listening"
    )
    parser.add_argument("--no-patch", action="store_true", help="serve without the patches")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the starting process dies (throw-away test servers)",
    )
    parser.add_argument(
        "--leases-dir",
        type=Path,
        help="stop once no live process holds a lease in this directory (shared servers)",
    )
    parser.add_argument("--lock-file", type=Path, help="the lock that guards --leases-dir")
    parser.add_argument(
        "--cache-mb",
        type=int,
        default=DEFAULT_CACHE_MB,
        help="WiredTiger cache in MB (settings.EMBEDDED_MONGO_CACHE_MB); with :memory: it "
        "must hold all the data",
    )
    parser.add_argument(
        "--malloc-arenas",
        type=int,
        default=DEFAULT_MALLOC_ARENAS,
        help="glibc malloc arenas (0: glibc's default, 8 per core)",
    )
    parser.add_argument(
        "--trim-interval",
        type=float,
        default=DEFAULT_TRIM_INTERVAL_S,
        help="seconds between malloc_trim calls that return freed memory (0: never)",
    )
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="debug: trace Python allocations; SIGUSR1 prints a memory report to stdout",
    )
    args = parser.parse_args(argv)
    if (args.leases_dir is None) != (args.lock_file is None):
        parser.error("--leases-dir and --lock-file go together")

    stopping = threading.Event()
    bound_malloc(arenas=args.malloc_arenas, trim_interval_s=args.trim_interval, stopping=stopping)
    if args.trace_memory:
        import tracemalloc

        tracemalloc.start()
        trace_command_peaks()
    signal.signal(signal.SIGUSR1, print_memory_report)

    from secantus import SecantusDBServer

    if not args.no_patch:
        apply_union_with_documents_patch()
        apply_nested_inclusion_project_patch()
        apply_and_filter_index_patch()
        apply_ordered_window_patch()

    if args.storage_path != ":memory:":
        Path(args.storage_path).mkdir(parents=True, exist_ok=True)
    server = SecantusDBServer(
        host=args.host,
        port=args.port,
        storage_path=args.storage_path,
        enable_test_commands=False,
        cache_size=f"{args.cache_mb}M",
    )
    server.start()

    def request_stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    ready = Path(args.ready_file)
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "port": server.port, "host": server.host}))
    tmp.replace(ready)
    if args.exit_with_parent:
        parent = os.getppid()
        threading.Thread(target=_stop_when_orphaned, args=(parent, stopping), daemon=True).start()
    # Released when this process exits, after the storage is closed.
    lock = args.lock_file.open("a") if args.lock_file is not None else None
    try:
        if lock is None:
            stopping.wait()
        else:
            _wait_until_unused(stopping, args.leases_dir, lock.fileno())
    finally:
        server.stop()
        ready.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
