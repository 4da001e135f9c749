from __future__ import annotations

from django.apps import AppConfig


class QueriesConfig(AppConfig):
    name = "queries"
    verbose_name = "Queries"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"

    def ready(self) -> None:
        # The in-process dispatcher runs a run by its task name; the core imports no app.
        from llmplatform.core.dispatch import register_runner
        from queries.run import query_execute
        from queries.start import RUN_TASK

        register_runner(RUN_TASK, query_execute)
