"""The chunk store's errors: one small hierarchy, each with a stable code.

Callers map these to their own catalogue at their edge (the cbr slice maps them to API errors);
the codes are stable so that mapping can be a table. Every message names the object it is about
(manifest id, block id, pack name) so an operator can find it in the store.
"""

from __future__ import annotations

__all__ = [
    "ChunkStoreError",
    "CorruptBlock",
    "CorruptObject",
    "LockLost",
    "MissingObject",
    "PlanStale",
    "StoreLocked",
    "UnknownBlock",
    "WrongKey",
]


class ChunkStoreError(Exception):
    """Base of every error the chunk store raises on purpose."""

    code = "chunkstore.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MissingObject(ChunkStoreError):
    """A named object (pack, index, manifest) is not in the backend."""

    code = "chunkstore.missing_object"

    def __init__(self, name: str, context: str = "") -> None:
        where = f" ({context})" if context else ""
        super().__init__(f"object {name} is missing from the store{where}")
        self.name = name


class CorruptObject(ChunkStoreError):
    """An object exists but its bytes are not what was written (hash, length or format)."""

    code = "chunkstore.corrupt_object"

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"object {name} is corrupt: {detail}")
        self.name = name
        self.detail = detail


class CorruptBlock(ChunkStoreError):
    """A block's blob does not decrypt, decompress or hash to its id."""

    code = "chunkstore.corrupt_block"

    def __init__(
        self, block_id: bytes, detail: str, *, manifest_id: str = "", pack: str = ""
    ) -> None:
        context = _context(manifest_id, pack)
        super().__init__(f"block {block_id.hex()}{context} is corrupt: {detail}")
        self.block_id = block_id
        self.detail = detail
        self.manifest_id = manifest_id
        self.pack = pack


class UnknownBlock(ChunkStoreError):
    """A manifest names a block that no index entry (and so no pack) holds."""

    code = "chunkstore.unknown_block"

    def __init__(self, block_id: bytes, *, manifest_id: str = "") -> None:
        context = _context(manifest_id, "")
        super().__init__(f"block {block_id.hex()}{context} is not in the store")
        self.block_id = block_id
        self.manifest_id = manifest_id


class WrongKey(ChunkStoreError):
    """The scope passed in is not the one the data was written with (other keys or name)."""

    code = "chunkstore.wrong_key"

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: {detail}")
        self.what = what


class StoreLocked(ChunkStoreError):
    """Another garbage collection holds the store."""

    code = "chunkstore.locked"


class LockLost(ChunkStoreError):
    """This process's lock was removed (its lease ran out unrenewed): another process may have
    acted as if it were gone, so the work it guarded must stop."""

    code = "chunkstore.lock_lost"


class PlanStale(ChunkStoreError):
    """The store changed under a collection plan (another collection rewrote the index)."""

    code = "chunkstore.plan_stale"


def _context(manifest_id: str, pack: str) -> str:
    parts = []
    if manifest_id:
        parts.append(f"manifest {manifest_id}")
    if pack:
        parts.append(f"pack {pack}")
    return f" ({', '.join(parts)})" if parts else ""
