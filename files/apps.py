from __future__ import annotations

from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "files"
    verbose_name = "Files"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"

    def ready(self) -> None:
        from files.services import INGEST_TASK
        from llmplatform.core.dispatch import register_long_background

        # A 500-page ingestion takes tens of seconds: answers' after-completion work must
        # not queue behind it.
        register_long_background(INGEST_TASK)
