"""The data plane: a deduplicating, compressing, encrypting block store for disk images.

A library with no knowledge of tenants, HTTP or databases: it works on bytes, scopes (keys)
and a small backend protocol. The storage rules are in `opencbr.chunkstore.store`.

    store = open_store("/var/lib/opencbr/store")          # or ChunkStore(LocalDirBackend(...))
    scope = Scope(name="region-1", id_key=k1, data_key=k2)  # data_key None: unencrypted
    result = store.backup(scope, open("disk.img", "rb"), size)
    store.restore(scope, result.manifest_id, "copy.img")
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from .allocator import keep_freed_buffers
from .backend import Backend, LocalDirBackend, MemoryBackend
from .backup import BackupResult
from .catalogue import CATALOGUE_PREFIX, Catalogue
from .codec import Scope
from .errors import (
    ChunkStoreError,
    CorruptBlock,
    CorruptObject,
    LockLost,
    MissingObject,
    PlanStale,
    StoreLocked,
    UnknownBlock,
    WrongKey,
)
from .formats import Manifest
from .gc import GcPlan, GcResult
from .locks import LockInfo
from .restore import RestoreResult
from .store import DEFAULT_BLOCK_SIZE, DEFAULT_PACK_SIZE, ChunkStore
from .verify import VerifyReport

__all__ = [
    "CATALOGUE_PREFIX",
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_PACK_SIZE",
    "Backend",
    "BackupResult",
    "Catalogue",
    "ChunkStore",
    "ChunkStoreError",
    "CorruptBlock",
    "CorruptObject",
    "GcPlan",
    "GcResult",
    "LocalDirBackend",
    "LockInfo",
    "LockLost",
    "Manifest",
    "MemoryBackend",
    "MissingObject",
    "PlanStale",
    "RestoreResult",
    "Scope",
    "StoreLocked",
    "UnknownBlock",
    "VerifyReport",
    "WrongKey",
    "keep_freed_buffers",
    "open_backend",
    "open_store",
]


def open_backend(url: str | os.PathLike[str], settings: object | None = None) -> Backend:
    """A backend from a location: a directory path, ``file:///path``, ``memory://`` or
    ``s3://bucket/prefix``.

    For S3, `settings` may carry ``s3_endpoint``, ``s3_region``, ``s3_access_key`` and
    ``s3_secret_key`` attributes (the service's settings object); other backends ignore it.
    """
    text = os.fspath(url)
    parsed = urlparse(text)
    if parsed.scheme in ("", "file"):
        return LocalDirBackend(Path(parsed.path if parsed.scheme else text))
    if parsed.scheme == "memory":
        return MemoryBackend()
    if parsed.scheme == "s3":
        from .s3 import S3Backend, S3Options  # boto3 is imported only when S3 is used

        options = S3Options(
            endpoint=getattr(settings, "s3_endpoint", None),
            region=getattr(settings, "s3_region", None) or "us-east-1",
            access_key=getattr(settings, "s3_access_key", None),
            secret_key=getattr(settings, "s3_secret_key", None),
        )
        return S3Backend.connect(text, options)
    raise ChunkStoreError(f"no chunk store backend for {parsed.scheme!r} locations")


def open_store(url: str | os.PathLike[str], settings: object | None = None) -> ChunkStore:
    """A `ChunkStore` with default parameters over `open_backend(url, settings)`."""
    return ChunkStore(open_backend(url, settings))
