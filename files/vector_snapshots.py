"""Each end user's cached vectors (and their BM25 index) kept on disk, so the first
question after a restart does not read the user's whole history from the database.

Why: building a matrix from the database costs about 2.5 ms per row on the embedded
server (it decodes every returned document in full): 126 s at 50k past questions, paid
again by every web process and every worker child after a restart. A snapshot loads in
milliseconds (``np.load`` of the arrays), and the cache then reads only what changed
since it was taken (``UserVectors.read_until``, the same incremental read as a warm
process), so a snapshot can be old without being wrong.

The database stays the truth:
- a snapshot is a cache: missing, unreadable or of another format, it is ignored and
  the matrix is built from the database as before;
- rows written after it are read by the incremental read; a file re-ingested or deleted
  since is dropped by the version check of ``group_vectors``; a query deleted since is
  dropped when a search returns it (every hit is re-read by primary key);
- a deletion through ``vector_cache_forget`` removes the user's snapshots at once, so no
  deleted vector outlives its row on disk.

Files: ``VECTOR_SNAPSHOT_DIR``/<sha256 of the cache key>.npz, mode 0600, written to a
temporary file and renamed (a reader never sees half a file; concurrent writers from
several processes each leave a complete snapshot). No pickles: ids are 12-byte arrays,
terms one UTF-8 string, so a tampered file cannot run code. Empty ``VECTOR_SNAPSHOT_DIR``
turns snapshots off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from bson import ObjectId
from django.conf import settings

from files.lexical_index import LexicalIndex

# The cache key of files.vector_cache: (owner id, end user, model, dimensions, source).
CacheKey = tuple[str, str, str, int, str]
logger = logging.getLogger(__name__)

# Bumped when the layout changes: a snapshot of another format is ignored.
FORMAT = 2


def _directory() -> Path | None:
    configured = settings.VECTOR_SNAPSHOT_DIR
    return Path(settings.BASE_DIR) / configured if configured else None


def _owner_user_prefix(owner_id: str, user_id: str) -> str:
    # The owner and end user are the file name's prefix, so forgetting a user finds every
    # source and model of theirs without a registry.
    return hashlib.sha256(f"{owner_id}\x00{user_id}".encode()).hexdigest()[:32]


def snapshot_path(key: CacheKey) -> Path | None:
    directory = _directory()
    if directory is None:
        return None
    owner_id, user_id, *rest = key
    rest_hash = hashlib.sha256("\x00".join(map(str, rest)).encode()).hexdigest()[:16]
    return directory / f"{_owner_user_prefix(owner_id, user_id)}-{rest_hash}.npz"


def _ids_array(ids: list[ObjectId]) -> np.ndarray:
    return np.frombuffer(b"".join(pk.binary for pk in ids), dtype=np.uint8).reshape(-1, 12)


def _ids_list(array: np.ndarray) -> list[ObjectId]:
    raw = array.tobytes()  # slicing bytes is ~10x faster than iterating numpy rows
    return [ObjectId(raw[start : start + 12]) for start in range(0, len(raw), 12)]


def _encode_group(group: object) -> str:
    return str(group)


def _decode_group(text: str) -> object:
    return ObjectId(text) if ObjectId.is_valid(text) else text


def _encode_version(version: object) -> object:
    return {"at": version.isoformat()} if isinstance(version, datetime) else version


def _decode_version(value: object) -> object:
    if isinstance(value, dict) and "at" in value:
        return datetime.fromisoformat(value["at"])
    return value


def snapshot_save(key: CacheKey, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write one snapshot (``snapshot_arrays``' output) atomically. Logs, never raises:
    a snapshot that cannot be written only costs the next process a cold read."""
    path = snapshot_path(key)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                np.savez(handle, meta=np.asarray(json.dumps(meta)), **arrays)
            os.chmod(temporary, 0o600)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        logger.warning("vector snapshot not written (%s): %s", path.name, exc)


def snapshot_arrays(entry: Any) -> tuple[dict[str, np.ndarray], dict]:
    """A copy of ``entry`` (a ``files.user_vectors.UserVectors``) to write, taken under
    the entry's lock and written outside it."""
    count = len(entry.ids)
    codes = sorted(entry.group_codes.items(), key=lambda item: item[1])
    meta = {
        "format": FORMAT,
        "dimensions": entry.dimensions,
        "read_until": entry.read_until.isoformat() if entry.read_until else None,
        "groups": [[_encode_group(group), code] for group, code in codes],
        "next_group_code": entry.next_group_code,
        "group_versions": [
            [_encode_group(group), _encode_version(version)]
            for group, version in entry.group_versions.items()
        ],
        "lexical": entry.lexicon is not None,
    }
    arrays = {
        "ids": _ids_array(entry.ids),
        "matrix": entry.buffer[:count].copy()
        if count
        else np.empty((0, entry.dimensions), np.float32),
        "groups": entry.groups[:count].copy() if count else np.empty(0, np.int32),
    }
    if entry.lexicon is not None:
        state = entry.lexicon.state()
        meta["terms"] = len(state["terms"])
        arrays.update(
            # Every indexed key is a row of the matrix: stored as its position there.
            lexicon_keys=np.asarray([entry.positions[key] for key in state["keys"]], np.int64),
            lexicon_lengths=state["lengths"],
            lexicon_terms=np.frombuffer("\n".join(state["terms"]).encode(), dtype=np.uint8),
            lexicon_offsets=state["offsets"],
            lexicon_slots=state["slots"],
            lexicon_tfs=state["tfs"],
        )
    return arrays, meta


def snapshot_load(key: CacheKey, entry: Any) -> bool:
    """Fill the empty ``entry`` from its snapshot; False (entry untouched) when there is
    none or it does not fit (another format, dimensions or lexical setting)."""
    path = snapshot_path(key)
    if path is None or not path.exists():
        return False
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            lexical = entry.lexicon is not None
            if (
                meta.get("format") != FORMAT
                or meta["dimensions"] != entry.dimensions
                or meta["lexical"] != lexical
            ):
                return False
            ids = _ids_list(stored["ids"])
            matrix = stored["matrix"]
            groups = stored["groups"]
            lexicon = None
            if lexical:
                terms_blob = stored["lexicon_terms"].tobytes().decode()
                lexicon = LexicalIndex.from_state(
                    {
                        "keys": [ids[position] for position in stored["lexicon_keys"].tolist()],
                        "lengths": stored["lexicon_lengths"],
                        "terms": terms_blob.split("\n") if meta["terms"] else [],
                        "offsets": stored["lexicon_offsets"],
                        "slots": stored["lexicon_slots"],
                        "tfs": stored["lexicon_tfs"],
                    }
                )
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        logger.warning("vector snapshot ignored (%s): %s", path.name, exc)
        return False
    entry.restore(
        ids=ids,
        matrix=matrix,
        groups=groups,
        group_codes={_decode_group(group): code for group, code in meta["groups"]},
        next_group_code=meta["next_group_code"],
        group_versions={
            _decode_group(group): _decode_version(version)
            for group, version in meta["group_versions"]
        },
        read_until=datetime.fromisoformat(meta["read_until"]) if meta["read_until"] else None,
        lexicon=lexicon,
    )
    return True


def snapshots_forget(*, owner_id: object, user_id: str) -> None:
    """Remove every snapshot of one end user (a deletion must not outlive its rows)."""
    directory = _directory()
    if directory is None or not directory.exists():
        return
    for path in directory.glob(f"{_owner_user_prefix(str(owner_id), user_id)}-*.npz"):
        path.unlink(missing_ok=True)


def snapshots_clear() -> None:
    """Remove every snapshot (tests and benchmarks that measure a cold read)."""
    directory = _directory()
    if directory is not None and directory.exists():
        for path in directory.glob("*.npz"):
            path.unlink(missing_ok=True)
