"""Catalogue objects: what a store's caller needs to find its way back into the store.

The store keeps them for its caller and never reads inside them: a catalogue object is an
opaque blob (the caller seals it) under ``catalogue/<kind>/<name>``, framed so that anyone can
check it without keys::

    b"OCBRCAT" 0x01 | BLAKE3(blob) (32 bytes) | blob

Unlike packs, index files and manifests they are named by the caller, not by their content,
and they are rewritten in place when what they describe changes (a put replaces the whole
object: the backends write atomically). See the store's rules in `store.py` for when a caller
writes and deletes them relative to manifests.
"""

from __future__ import annotations

import re

import blake3

from .backend import Backend
from .errors import CorruptObject, MissingObject

__all__ = ["CATALOGUE_PREFIX", "Catalogue", "frame", "unframe"]

CATALOGUE_PREFIX = "catalogue/"
_MAGIC = b"OCBRCAT\x01"
_DIGEST = 32
_KIND = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def frame(blob: bytes) -> bytes:
    return _MAGIC + blake3.blake3(blob).digest() + blob


def unframe(data: bytes, name: str) -> bytes:
    """The blob of a framed object, or `CorruptObject` when its frame or checksum is wrong."""
    if data[: len(_MAGIC)] != _MAGIC:
        raise CorruptObject(name, "not a catalogue object (bad magic or version)")
    start = len(_MAGIC) + _DIGEST
    blob = data[start:]
    if blake3.blake3(blob).digest() != data[len(_MAGIC) : start]:
        raise CorruptObject(name, "checksum does not match")
    return blob


def _object(kind: str, name: str) -> str:
    if not _KIND.match(kind) or not _NAME.match(name):
        raise ValueError(f"bad catalogue object name {kind!r}/{name!r}")
    return f"{CATALOGUE_PREFIX}{kind}/{name}"


class Catalogue:
    """The catalogue objects of one store."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def put(self, kind: str, name: str, blob: bytes) -> None:
        self.backend.put(_object(kind, name), frame(blob))

    def get(self, kind: str, name: str) -> bytes | None:
        """The blob, None when there is none; `CorruptObject` when it is damaged."""
        path = _object(kind, name)
        try:
            data = self.backend.get(path)
        except MissingObject:
            return None
        return unframe(data, path)

    def delete(self, kind: str, name: str) -> None:
        self.backend.delete(_object(kind, name))

    def names(self, kind: str) -> list[str]:
        """The names of every object of `kind`, sorted."""
        prefix = _object(kind, "x")[:-1]
        return sorted(n.removeprefix(prefix) for n in self.backend.list(prefix))

    def check(self) -> list[CorruptObject]:
        """Every catalogue object whose frame is damaged (no keys needed)."""
        damaged = []
        for name in sorted(self.backend.list(CATALOGUE_PREFIX)):
            try:
                unframe(self.backend.get(name), name)
            except CorruptObject as exc:
                damaged.append(exc)
            except MissingObject:
                continue  # deleted since listed
        return damaged
