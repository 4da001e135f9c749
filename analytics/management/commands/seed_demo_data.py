"""python manage.py seed_demo_data --queries N [--owner NAME] [--days 30]

Realistic demo data for trying the admin and for bench/scale.py: one owner's completed
queries (10 per session, with 384-float unit embeddings of the local model), their
sessions and 10 events per session, spread over the last ``--days`` days. Loaded
through the ORM in batches, then folded into the analytics rollups.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone
from tqdm import tqdm

from analytics.services import rollups_rebuild
from queries.models import Query
from sessions.models import Event, Session

QUERIES_PER_SESSION = 10
EVENTS_PER_SESSION = 10
BATCH_SESSIONS = 100
DIMENSIONS = 384
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
MODELS = (
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-3-5-haiku"),
    ("google", "gemini-2.0-flash"),
)


class Command(BaseCommand):
    help = "Load N completed demo queries (with sessions and events) for one owner."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queries", type=int, required=True)
        parser.add_argument("--owner", default="demo", help="username of the owner (created)")
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument(
            "--users",
            type=int,
            default=1,
            help="end users the sessions are spread over (1: one user's history and memory "
            "hold every query, the worst case for both)",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: object, **options) -> None:
        owner, _ = get_user_model().objects.get_or_create(username=options["owner"])
        rng = np.random.default_rng(options["seed"])
        sessions = max(options["queries"] // QUERIES_PER_SESSION, 1)
        now = timezone.now().replace(microsecond=0)
        span = timedelta(days=options["days"])
        prefix = f"demo-{rng.integers(1 << 30):x}"
        progress = tqdm(
            total=options["queries"], unit="q", disable=options["no_progress"], desc="queries"
        )
        made = 0
        for first in range(0, sessions, BATCH_SESSIONS):
            batch = range(first, min(first + BATCH_SESSIONS, sessions))
            session_rows, event_rows, query_rows = [], [], []
            for index in batch:
                start = now - span + span * (index / sessions)
                session_id = f"{prefix}-s{index}"
                # Stable across runs: loading more data grows the same users.
                user_id = f"demo-user-{index % options['users']}"
                session_rows.append(
                    Session(
                        owner=owner,
                        session_id=session_id,
                        user_id=user_id,
                        device="Desktop" if index % 3 else "Mobile",
                        start_t=start,
                        end_t=start + timedelta(minutes=10),
                    )
                )
                event_rows.extend(
                    Event(
                        owner=owner,
                        session_id=session_id,
                        event_id=f"e{n}",
                        type="click",
                        t=int(start.timestamp() * 1000) + n,
                        received_at=start + timedelta(seconds=n),
                    )
                    for n in range(EVENTS_PER_SESSION)
                )
                count = min(QUERIES_PER_SESSION, options["queries"] - made)
                vectors = rng.normal(size=(count, DIMENSIONS))
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                for n in range(count):
                    provider, model = MODELS[(index + n) % len(MODELS)]
                    asked = start + timedelta(seconds=30 * n)
                    query_rows.append(
                        Query(
                            owner=owner,
                            user_id=user_id,
                            session_id=session_id,
                            query=f"Demo question {index}.{n}: which pan is best for eggs?",
                            response="A non-stick pan with a heavy base. " * 8,
                            embedding=vectors[n].tolist(),
                            embedding_model=EMBEDDING_MODEL,
                            model_provider=provider,
                            model_name=model,
                            status=Query.Status.COMPLETED,
                            usage={
                                "input_tokens": 120,
                                "output_tokens": 80,
                                "total_tokens": 200,
                                "cost_usd": 0.0004,
                            },
                            latency={"total_ms": float(rng.gamma(4.0, 300.0))},
                            agents_used=["coordinator", "memory", "writer"],
                            timestamp=asked,
                            completed_at=asked + timedelta(seconds=2),
                        )
                    )
                made += count
            Session.objects.bulk_create(session_rows)
            Event.objects.bulk_create(event_rows)
            Query.objects.bulk_create(query_rows)
            progress.update(len(query_rows))
        progress.close()
        # Backdated rows are behind the rollups' watermark: fold everything again.
        folded = rollups_rebuild()
        self.stdout.write(
            f"Loaded {made} queries, {sessions} sessions, {sessions * EVENTS_PER_SESSION} events "
            f"for {owner.username}; rollups folded until {folded.folded_until:%Y-%m-%d %H:%M}."
        )
