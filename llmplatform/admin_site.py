"""The operator console: Django admin with the platform's name and dashboard link."""

from __future__ import annotations

from django.conf import settings
from django.contrib.admin import AdminSite


class OperatorAdminSite(AdminSite):
    site_header = f"{settings.APP_NAME} operator console"
    site_title = settings.APP_NAME
    index_title = "Operations"
