"""The project's ASGI application with candidate speed-ups applied by monkeypatching.

Bench-only: ``bench/sse_streams.py --asgi-app bench.asgi_levers:application`` serves this
instead of ``config.asgi:application``, so a lever's gain is measured end to end
(server, database, event log) before anyone changes the project's code. The levers come
from BENCH_LEVERS (comma-separated names of LEVERS; empty: none, the project as is).

- ``no-channel-layer``: our consumers never use the channel layer, yet each connection
  makes a channel and (with REDIS_URL) keeps a BZPOPMIN loop on Redis for it.
- ``api-key-cache``, ``claim-in-background``: as in bench/ttft_levers.py (the same
  functions; both are what the code now does, kept to measure them on older revisions).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for entry in (str(ROOT), str(ROOT / "bench")):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from config.asgi import application  # noqa: E402  (sets Django up)


def _no_channel_layer() -> None:
    from queries.consumers import ChatConsumer, _SseConsumer

    _SseConsumer.channel_layer_alias = None
    ChatConsumer.channel_layer_alias = None


def _levers() -> dict:
    from ttft_levers import LEVERS

    return {"no-channel-layer": _no_channel_layer, **LEVERS}


for _name in filter(None, os.environ.get("BENCH_LEVERS", "").split(",")):
    _levers()[_name]()

__all__ = ["application"]
