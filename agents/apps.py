from __future__ import annotations

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"

    def ready(self) -> None:
        # Metric labels name only catalogue models; core cannot import the catalogue.
        from agents.providers.catalogue import known_chat_models
        from llmplatform.core import metrics

        metrics.model_catalogue_register(known_chat_models)
