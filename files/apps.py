from __future__ import annotations

from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "files"
    verbose_name = "Files"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"
