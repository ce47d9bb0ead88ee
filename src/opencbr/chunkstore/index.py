"""The in-memory view of the index files, refreshed from the backend before each operation.

Index files are immutable, so a loaded file never changes; when a file disappears (garbage
collection rewrote the index) the view is rebuilt from the files that exist now. Running
operations keep the dict they started with: packs it points to are kept by their locks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from .backend import Backend
from .errors import CorruptObject, MissingObject
from .formats import (
    IndexFile,
    PackHeader,
    decode_index,
    encode_index,
    object_digest,
    pack_header_length,
    parse_pack_header,
)

__all__ = [
    "INDEX_PREFIX",
    "PACK_PREFIX",
    "BlockIndex",
    "Location",
    "list_packs",
    "load_index_file",
    "pack_digest",
    "pack_object",
    "read_pack_header",
    "rebuild_index",
    "write_index_file",
]

INDEX_PREFIX = "index/"
PACK_PREFIX = "packs/"
_HEADER_PROBE = 64 * 1024
_REFRESH_ATTEMPTS = 3


class Location(NamedTuple):
    """Where a blob lies. A named tuple: a store's index holds one per block, and an index
    load builds them all (a frozen dataclass took three times as long)."""

    pack: str
    offset: int
    length: int


def pack_object(digest: str) -> str:
    """The object name of the pack with content digest `digest`."""
    return f"{PACK_PREFIX}{digest[:2]}/{digest}"


def pack_digest(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def load_index_file(backend: Backend, name: str) -> IndexFile:
    data = backend.get(name)
    if object_digest(data) != name.removeprefix(INDEX_PREFIX):
        raise CorruptObject(name, "content does not match its name")
    return decode_index(data, name)


def write_index_file(
    backend: Backend, locations: Iterable[tuple[bytes, Location]]
) -> tuple[str, int]:
    """Write one index file for `locations`; returns its object name and size."""
    packs: dict[str, int] = {}
    entries = []
    for block_id, loc in locations:
        number = packs.setdefault(loc.pack, len(packs))
        entries.append((block_id, number, loc.offset, loc.length))
    data = encode_index(list(packs), entries)
    name = INDEX_PREFIX + object_digest(data)
    backend.put(name, data)
    return name, len(data)


class BlockIndex:
    """Block id -> location, for every block the current index files list."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self.files: frozenset[str] = frozenset()
        self.entries: dict[bytes, Location] = {}

    def refresh(self) -> dict[bytes, Location]:
        """Catch up with the index files in the backend; returns the current mapping.

        A listed file that is gone when read was replaced by garbage collection, which writes
        the new file before it deletes the old ones: it is skipped and the files are listed
        again for its replacement. An object store's listing may lag behind its deletes and
        creations; after `_REFRESH_ATTEMPTS` listings the view goes without the files it
        could not read (a backup then stores those blocks again; a restore that needs one
        fails with UnknownBlock and is tried again later)."""
        with self._lock:
            gone: set[str] = set()
            for _ in range(_REFRESH_ATTEMPTS):
                vanished = self._catch_up(gone)
                if not vanished:
                    break
                gone |= vanished
            return self.entries

    def _catch_up(self, gone: set[str]) -> set[str]:
        """Load the listed files not loaded yet; returns the ones that were gone."""
        names = frozenset(self._backend.list(INDEX_PREFIX)) - gone
        if not self.files <= names:
            self.files, self.entries = frozenset(), {}
        new = sorted(names - self.files)
        vanished: set[str] = set()
        if new:
            entries = dict(self.entries) if self.files else {}
            for name in new:
                try:
                    _merge(entries, load_index_file(self._backend, name))
                except MissingObject:
                    vanished.add(name)
            self.files, self.entries = self.files | (set(new) - vanished), entries
        return vanished

    def add(self, name: str, locations: Sequence[tuple[bytes, Location]]) -> None:
        """Record an index file this process has just written."""
        with self._lock:
            entries = dict(self.entries)
            entries.update(locations)
            self.files, self.entries = self.files | {name}, entries


def _merge(entries: dict[bytes, Location], index: IndexFile) -> None:
    """Add the entries of `index`; a block already known keeps its first location."""
    packs = index.packs
    new = tuple.__new__  # what `Location(...)` calls, minus a Python-level call per entry
    entries.update(
        {  # reversed: of two entries for one block in this file, the first is the one kept
            block_id: new(Location, (packs[number], offset, length))
            for block_id, number, offset, length in reversed(index.entries)
            if block_id not in entries
        }
    )


def read_pack_header(backend: Backend, digest: str) -> PackHeader:
    """The table of a pack, with one ranged get (two when the table is large)."""
    name = pack_object(digest)
    head = backend.get(name, 0, _HEADER_PROBE)
    length = pack_header_length(head, name)
    if length > len(head):
        head = backend.get(name, 0, length)
    return parse_pack_header(head, name)


def list_packs(backend: Backend) -> set[str]:
    """Digests of every pack in the backend."""
    return {pack_digest(name) for name in backend.list(PACK_PREFIX)}


def rebuild_index(backend: Backend) -> str | None:
    """Replace every index file by one built from the pack tables; returns its name.

    Index files written while this runs are kept (only the ones listed first are deleted).
    """
    old = list(backend.list(INDEX_PREFIX))
    locations = []
    for digest in sorted(list_packs(backend)):
        for entry in read_pack_header(backend, digest).entries:
            locations.append((entry.block_id, Location(digest, entry.offset, entry.length)))
    name = write_index_file(backend, locations)[0] if locations else None
    for stale in old:
        if stale != name:
            backend.delete(stale)
    return name
