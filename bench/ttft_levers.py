"""Candidate speed-ups of the time to first token, applied by monkeypatching.

bench/ttft_profile.py measures each on the instrumented path (``--lever``, ``--compare``)
and bench/asgi_levers.py serves them (``BENCH_LEVERS``). They live apart from the profiler
so that serving them does not pull in its instrumentation. Nothing here changes the
project's files; ``reset_levers`` undoes them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


def lever_api_key_cache() -> None:
    """api_key_for_scope answered from a per-process cache for 1 s (revocation within 1 s)."""
    import queries.consumers
    from llmplatform.core.auth import _scope_credentials

    inner = queries.consumers.api_key_for_scope
    cache: dict[str, tuple[float, Any]] = {}

    def cached(scope: dict, *, allow_query_param: bool = False) -> Any:
        _, raw = _scope_credentials(scope, allow_query_param=allow_query_param)
        hit = cache.get(raw or "")
        if raw and hit is not None and time.monotonic() - hit[0] < 1.0:
            return hit[1]
        owner = inner(scope, allow_query_param=allow_query_param)
        if raw and owner is not None:
            cache[raw] = (time.monotonic(), owner)
        return owner

    queries.consumers.api_key_for_scope = cached


def lever_claim_in_background() -> None:
    """In-process: the claim's status write goes to a thread and is not waited for (the
    outcome's save waits for it, so the order of writes is kept)."""
    from django.utils import timezone

    import queries.run
    from queries.models import Query

    inner_claim = queries.run._claim
    inner_store = queries.run._store_outcome

    def claim(query_id: str, query: Any) -> Any:
        if query is None:
            return inner_claim(query_id, query)
        query.status = Query.Status.RUNNING
        query.heartbeat_at = timezone.now()
        update = Query.objects.filter(pk=query.pk).update
        PENDING.append(WRITES.submit(update, status=query.status, heartbeat_at=query.heartbeat_at))
        return query

    def store(*args: Any, **kwargs: Any) -> Any:
        while PENDING:
            PENDING.pop().result(timeout=10)
        return inner_store(*args, **kwargs)

    queries.run._claim = claim
    queries.run._store_outcome = store


def lever_switch_interval() -> None:
    """The GIL handed over every 1 ms instead of CPython's 5 ms: a thread woken by I/O (the
    event loop with a frame to send, a database reply) waits less for one that computes."""
    sys.setswitchinterval(SWITCH_INTERVAL_LEVER_S)


SWITCH_INTERVAL_LEVER_S = 0.001
PENDING: list[Future] = []
WRITES = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bench-writes")


LEVERS: dict[str, Callable[[], None]] = {
    "api-key-cache": lever_api_key_cache,
    "claim-in-background": lever_claim_in_background,
    "switch-interval": lever_switch_interval,
}


SNAPSHOT: dict[str, Any] = {}


def reset_levers() -> None:
    """Undo the levers: restore what the first call found (ttft_profile makes that call
    right after its instrumentation, so the instrumented functions come back)."""
    import queries.consumers
    import queries.run

    if not SNAPSHOT:
        SNAPSHOT.update(
            switch_interval=sys.getswitchinterval(),
            owner=queries.consumers.api_key_for_scope,
            claim=queries.run._claim,
            store=queries.run._store_outcome,
            execute=queries.run.query_execute,
        )
        return
    sys.setswitchinterval(SNAPSHOT["switch_interval"])
    queries.consumers.api_key_for_scope = SNAPSHOT["owner"]
    queries.run._claim = SNAPSHOT["claim"]
    queries.run._store_outcome = SNAPSHOT["store"]
    queries.run.query_execute = SNAPSHOT["execute"]
