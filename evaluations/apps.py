from __future__ import annotations

from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    """Evaluation datasets, scorers (the LLM judge included) and evaluation runs."""

    name = "evaluations"
    verbose_name = "Evaluations"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"
