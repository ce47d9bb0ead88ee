"""What the store's operations (backup, restore, gc, verify) need of a store: `ChunkStore` is
one. They take this instead of the store itself, so that `store.py` imports them and none of
them imports it back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .backend import Backend
from .catalogue import Catalogue
from .formats import Manifest
from .index import BlockIndex

__all__ = ["StoreParts"]


class StoreParts(Protocol):
    backend: Backend
    block_size: int
    pack_size: int
    workers: int
    batch_bytes: int
    window: int
    clock: Callable[[], float]
    lock_refresh: float
    shift_unit: int
    index: BlockIndex
    catalogue: Catalogue

    def require_version(self, version: int) -> None: ...

    def load_manifest(self, manifest_id: str) -> Manifest: ...

    def list_manifests(self) -> list[str]: ...

    def delete_manifest(self, manifest_id: str) -> None: ...
