"""Streaming a backup's blocks in disk order: consecutive blocks stored together in a pack are
fetched with one ranged read, and the stream is the image, holes as None."""

from __future__ import annotations

import os

from opencbr.chunkstore import MemoryBackend
from opencbr.chunkstore.index import PACK_PREFIX

from .conftest import BLOCK, make_scope, make_store, reader


class CountingBackend(MemoryBackend):
    """The in-memory store, counting the reads of pack objects."""

    def __init__(self) -> None:
        super().__init__()
        self.pack_reads = 0

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if name.startswith(PACK_PREFIX):
            self.pack_reads += 1
        return super().get(name, offset, length)


def test_consecutive_blocks_are_read_together_and_streamed_in_order() -> None:
    backend = CountingBackend()
    store = make_store(backend)
    scope = make_scope()
    data = os.urandom(40 * BLOCK) + bytes(8 * BLOCK) + os.urandom(20 * BLOCK + 100)
    result = store.backup(scope, reader(data), len(data))
    backend.pack_reads = 0
    streamed = list(store.iter_blocks(scope, result.manifest_id))
    assert [offset for offset, _ in streamed] == list(range(0, len(data), BLOCK))
    assert [d is None for _, d in streamed] == [not any(data[o : o + BLOCK]) for o, _ in streamed]
    assert b"".join(d or bytes(BLOCK) for _, d in streamed) == data
    packs = len(list(backend.list(PACK_PREFIX)))
    assert backend.pack_reads <= packs + 2  # one read per pack (and per gap), not per block


def test_without_holes_only_the_data_blocks_are_streamed_the_same() -> None:
    backend = CountingBackend()
    store = make_store(backend)
    scope = make_scope()
    data = bytes(3 * BLOCK) + os.urandom(5 * BLOCK) + bytes(9 * BLOCK) + os.urandom(2 * BLOCK)
    data += bytes(BLOCK) + os.urandom(BLOCK + 100)
    result = store.backup(scope, reader(data), len(data))
    every = list(store.iter_blocks(scope, result.manifest_id))
    backend.pack_reads = 0
    only_data = list(store.iter_blocks(scope, result.manifest_id, holes=False))
    assert only_data == [(offset, d) for offset, d in every if d is not None]
    assert [offset // BLOCK for offset, _ in only_data] == [3, 4, 5, 6, 7, 17, 18, 20, 21]
    assert backend.pack_reads <= len(list(backend.list(PACK_PREFIX))) + 3  # runs, not blocks
