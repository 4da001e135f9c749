"""python manage.py setup_indexes [--check]"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from llmplatform.core.indexes import indexes_ensure


class Command(BaseCommand):
    help = (
        "Create or verify every index, the vector index included, and report what was done "
        "and what this server does not support."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check", action="store_true", help="only report; exit 1 if an index is missing"
        )

    def handle(self, *args: object, **options: object) -> None:
        outcomes = indexes_ensure(create=not options["check"])
        for outcome in outcomes:
            line = f"{outcome.action:8} {outcome.collection}.{outcome.name}"
            if outcome.note:
                line += f"  ({outcome.note})"
            self.stdout.write(line)
        counts = {
            action: sum(o.action == action for o in outcomes)
            for action in ("exists", "created", "skipped", "missing")
        }
        self.stdout.write(", ".join(f"{n} {action}" for action, n in counts.items() if n))
        if counts["missing"]:
            raise CommandError("Indexes are missing: run `python manage.py setup_indexes`.")
