"""The storage quota: how much an owner keeps stored, against the paying key's limit.

Storage is counted per owner (files belong to owners, not keys): the bytes of every
upload the owner keeps plus the UTF-8 bytes of its documents' stored passages. The limit
is the paying key's ``storage_mb`` (the account's ``AccountLimits.storage_mb`` for the
signed-in chat UI), else ``DEFAULT_STORAGE_MB``; empty there too means no limit. An
upload, or an ingestion's passages, that would cross the limit is refused with 413
``storage_quota_exceeded``; deleting files frees their bytes at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Sum

from files.charges import Payer
from files.models import File
from llmplatform.core.errors import ApplicationError
from llmplatform.core.models import AccountLimits

MB = 1024 * 1024


@dataclass(frozen=True)
class StorageUsage:
    limit_bytes: int | None  # None: no limit
    used_bytes: int

    @property
    def remaining_bytes(self) -> int | None:
        return None if self.limit_bytes is None else max(self.limit_bytes - self.used_bytes, 0)

    def as_dict(self) -> dict[str, Any]:
        """In MB, as ``/api/v1/usage`` shows it."""

        def mb(value: int | None) -> float | None:
            return None if value is None else round(value / MB, 3)

        return {
            "limit": mb(self.limit_bytes),
            "used": mb(self.used_bytes),
            "remaining": mb(self.remaining_bytes),
        }


def storage_limit_mb(*, payer: Payer) -> int | None:
    """The storage limit in MB of ``payer`` (its own, else DEFAULT_STORAGE_MB; None: none)."""
    own = None
    if payer.api_key is not None:
        own = payer.api_key.storage_mb
    elif payer.account is not None:
        own = (
            AccountLimits.objects.filter(user_id=payer.account.pk)
            .values_list("storage_mb", flat=True)
            .first()
        )
    return own if own is not None else settings.DEFAULT_STORAGE_MB


def storage_used_bytes(*, owner_id: Any, excluding_file_id: Any = None) -> int:
    """Bytes ``owner_id`` keeps: uploads plus stored passage text (a file's own passages
    left out with ``excluding_file_id``, for its re-ingestion)."""
    files = File.objects.filter(owner_id=owner_id)
    totals = files.aggregate(uploads=Sum("size"), passages=Sum("chunk_bytes"))
    used = int(totals["uploads"] or 0) + int(totals["passages"] or 0)
    if excluding_file_id is not None:
        own = files.filter(pk=excluding_file_id).values_list("chunk_bytes", flat=True).first()
        used -= int(own or 0)
    return used


def storage_usage(*, owner_id: Any, payer: Payer) -> StorageUsage:
    """What ``owner_id`` stores against ``payer``'s limit. Raises nothing."""
    limit_mb = storage_limit_mb(payer=payer)
    return StorageUsage(
        limit_bytes=None if limit_mb is None else limit_mb * MB,
        used_bytes=storage_used_bytes(owner_id=owner_id),
    )


def storage_check(
    *, owner_id: Any, payer: Payer, adding: int, excluding_file_id: Any = None, what: str
) -> None:
    """Refuse storing ``adding`` more bytes past the limit.

    Raises ApplicationError (413 ``storage_quota_exceeded``, used/limit in the details).
    """
    limit_mb = storage_limit_mb(payer=payer)
    if limit_mb is None:
        return
    used = storage_used_bytes(owner_id=owner_id, excluding_file_id=excluding_file_id)
    limit = limit_mb * MB
    if used + adding <= limit:
        return
    raise ApplicationError(
        f"Storing {what} ({adding} bytes) would exceed the storage quota: {used} of "
        f"{limit} bytes ({limit_mb} MB) are in use. Delete files you no longer need "
        "(DELETE /api/v1/files/<id>) or ask an operator to raise storage_mb in admin.",
        code="storage_quota_exceeded",
        status=413,
        extra={
            "used_bytes": used,
            "limit_bytes": limit,
            "adding_bytes": adding,
            "used_mb": round(used / MB, 3),
            "limit_mb": limit_mb,
        },
    )
