from __future__ import annotations

from django.apps import AppConfig


class ProductsConfig(AppConfig):
    name = "products"
    verbose_name = "Products"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"
