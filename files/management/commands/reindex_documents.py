"""python manage.py reindex_documents [--user USER_ID] [--file FILE_ID ...] [--all]"""

from __future__ import annotations

from bson import ObjectId
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from agents.providers.embeddings import get_embedder
from files.ingestion import document_ingest, document_requeue
from files.models import File


class Command(BaseCommand):
    help = (
        "Extract, chunk and embed documents again with the current embedder, here and now "
        "(not through the queue), with a progress bar. By default every document whose "
        "passages were embedded with another model, or whose ingestion failed; --user and "
        "--file narrow the choice, --all takes every document."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", help="only this end user's documents (user_id)")
        parser.add_argument(
            "--file", action="append", default=[], help="only this file id (repeatable)"
        )
        parser.add_argument(
            "--all",
            action="store_true",
            help="every selected document, even those already embedded with this model",
        )

    def handle(self, *args: object, **options) -> None:
        model = get_embedder().model
        documents = File.objects.exclude(ingestion_status=File.Ingestion.NONE)
        if options["user"]:
            documents = documents.filter(user_id=options["user"])
        if options["file"]:
            invalid = [f for f in options["file"] if not ObjectId.is_valid(f)]
            if invalid:
                raise CommandError(f"Not file ids: {', '.join(invalid)}")
            documents = documents.filter(pk__in=[ObjectId(f) for f in options["file"]])
        if not (options["all"] or options["file"]):
            documents = documents.exclude(
                ingestion_status=File.Ingestion.READY, embedding_model=model
            )
        selected = list(documents.order_by("pk"))
        outcomes = {"ready": 0, "failed": 0}
        with tqdm(
            total=len(selected), desc=f"re-embedding with {model}", unit="file", file=self.stderr
        ) as bar:
            for file in selected:
                document_ingest(file_id=str(document_requeue(file=file).pk))
                file.refresh_from_db()
                outcomes[
                    "ready" if file.ingestion_status == File.Ingestion.READY else "failed"
                ] += 1
                bar.set_postfix(ready=outcomes["ready"], failed=outcomes["failed"])
                bar.update()
        self.stdout.write(
            f"{len(selected)} document(s): {outcomes['ready']} ready, {outcomes['failed']} failed "
            f"(embedding model {model})"
        )
        if outcomes["failed"]:
            self.stdout.write("See the failures' errors in the admin (Files, ingestion error).")
