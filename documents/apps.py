from __future__ import annotations

from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    """The edges of "ask your documents" that start background work or read across apps:
    upload (which queues ingestion), semantic search, and the documents admin.

    The data and its services live in ``files`` (below ``queries``); these edges sit
    above ``queries`` because only the run owner's dispatcher knows where background
    work runs.
    """

    name = "documents"
    verbose_name = "Documents"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"
