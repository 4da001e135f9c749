from __future__ import annotations

from django.apps import AppConfig


class QueriesConfig(AppConfig):
    name = "queries"
    verbose_name = "Queries"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"
