from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "llmplatform.core"
    label = "core"
    verbose_name = "API access"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"

    def ready(self) -> None:
        # Registering: system checks, the first-run login receiver, the OpenAPI auth scheme.
        from llmplatform.core import checks, first_run, schema  # noqa: F401
        from llmplatform.core.strict_strings import strict_strings_install

        strict_strings_install()
