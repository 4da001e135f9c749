from __future__ import annotations

from django.apps import AppConfig


class ChatSessionsConfig(AppConfig):
    name = "sessions"
    # "sessions" is django.contrib.sessions' label.
    label = "chat_sessions"
    verbose_name = "Sessions and experiments"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"
