"""Where upload bytes live: Django's storage API, alias ``uploads`` in STORAGES.

Every read and write of upload bytes goes through ``upload_storage()``, so a Celery
worker on another machine reads what the web process stored once STORAGES points at a
shared backend (S3-compatible storage through django-storages; see the README).
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage, storages

UPLOADS_ALIAS = "uploads"


class UploadDirStorage(FileSystemStorage):
    """Local disk under UPLOAD_DIR, read when used rather than when first built.

    Django builds a storage once per process; tests and `make run` change UPLOAD_DIR in
    settings, and FileSystemStorage would keep the directory it saw first.
    """

    @property
    def base_location(self) -> str:  # type: ignore[override]
        return str(self._location or settings.UPLOAD_DIR)

    @property
    def location(self) -> str:  # type: ignore[override]
        return os.path.abspath(self.base_location)


def upload_storage() -> Storage:
    return storages[UPLOADS_ALIAS]
