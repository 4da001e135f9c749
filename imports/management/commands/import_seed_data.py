"""python manage.py import_seed_data --source-uri URI --source-db NAME --owner USERNAME
[--dry-run] [--since DATE] [--reembed]

Reads the seed-era service's collections (queries with their 1536-d embeddings, sessions
with their events, summaries, products, files metadata) and writes them as the owner's
documents. A rerun adds nothing twice; an interrupted run is finished by running it again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from pymongo import MongoClient
from pymongo.errors import PyMongoError
from tqdm import tqdm

from agents.providers.embeddings import get_embedder
from agents.providers.provider_errors import ProviderError
from imports.services import ImportReport, seed_import

SOURCE_TIMEOUT_MS = 10_000


def _since(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--since {value!r}: use an ISO date, e.g. 2025-01-31") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Import the seed-era service's MongoDB data as one owner's documents."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source-uri", required=True, help="the seed service's MONGODB_URI")
        parser.add_argument("--source-db", required=True, help="its database, e.g. LLMPlatform")
        parser.add_argument("--owner", required=True, help="username the documents belong to")
        parser.add_argument("--dry-run", action="store_true", help="read and check, write nothing")
        parser.add_argument(
            "--since", type=_since, help="only documents from this date (UTC) on, by their date"
        )
        parser.add_argument(
            "--reembed",
            action="store_true",
            help="replace imported embeddings with the current embedder's",
        )

    def handle(self, *args, **options) -> None:
        try:
            owner = get_user_model().objects.get(username=options["owner"])
        except get_user_model().DoesNotExist:
            raise CommandError(
                f"No user {options['owner']!r}: create it first (createsuperuser, or admin)."
            ) from None
        client = MongoClient(
            options["source_uri"], tz_aware=True, serverSelectionTimeoutMS=SOURCE_TIMEOUT_MS
        )
        quiet = options["verbosity"] == 0

        def progress(name: str, total: int) -> tqdm:
            return tqdm(total=total, desc=name, unit="doc", disable=quiet, file=self.stderr)

        try:
            source = client[options["source_db"]]
            if options["source_db"] not in client.list_database_names():
                raise CommandError(f"The source has no database {options['source_db']!r}.")
            report = seed_import(
                source=source,
                owner=owner,
                since=options["since"],
                dry_run=options["dry_run"],
                reembed=options["reembed"],
                embedder=get_embedder() if options["reembed"] else None,
                progress=progress,
            )
        except PyMongoError as exc:
            raise CommandError(f"Reading the source failed: {exc}") from exc
        except ProviderError as exc:
            raise CommandError(
                f"Re-embedding failed: {exc.message} Run the command again: what was "
                "imported stays, and re-embedding resumes."
            ) from exc
        finally:
            client.close()
        self._print(report)

    def _print(self, report: ImportReport) -> None:
        title = "Dry run (nothing written)" if report.dry_run else "Imported"
        self.stdout.write(f"{title} from {report.source_db}:")
        self.stdout.write(
            f"  {'collection':<10} {'read':>8} {'imported':>9} {'already':>8} {'invalid':>8}"
        )
        for name, c in report.collections.items():
            self.stdout.write(
                f"  {name:<10} {c.read:>8} {c.imported:>9} {c.already_imported:>8} {c.invalid:>8}"
            )
        for name, c in report.collections.items():
            for source_id, reason in c.problems:
                self.stdout.write(f"  invalid {name} {source_id}: {reason}")
            if c.invalid > len(c.problems):
                more = ", ".join(f"{reason} x{n}" for reason, n in c.reasons.most_common())
                self.stdout.write(f"  ... {c.invalid - len(c.problems)} more in {name} ({more})")
        if report.embedding_model:
            self.stdout.write(
                f"Re-embedded {report.reembedded} queries with {report.embedding_model}."
            )
        if report.rollups_rebuilt:
            self.stdout.write("Analytics rollups rebuilt.")
