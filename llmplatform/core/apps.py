from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "llmplatform.core"
    label = "core"
    verbose_name = "API access"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"

    def ready(self) -> None:
        from llmplatform.core import schema  # noqa: F401  (registers the OpenAPI auth scheme)
