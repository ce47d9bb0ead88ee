"""A backup given the disk's data extents reads only them and records the rest as holes."""

from __future__ import annotations

import os

from opencbr.chunkstore import ChunkStore, MemoryBackend, Scope

BS = 4096


def _store() -> ChunkStore:
    return ChunkStore(MemoryBackend(), block_size=BS)


def test_only_data_extents_are_read_and_the_rest_restores_as_zeros() -> None:
    size = 64 * BS
    disk = bytearray(size)
    disk[5 * BS : 7 * BS] = os.urandom(2 * BS)
    disk[40 * BS : 40 * BS + 100] = os.urandom(100)
    reads: list[tuple[int, int]] = []

    def read_at(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return bytes(disk[offset : offset + length])

    scope = Scope(name="s", id_key=os.urandom(32), data_key=os.urandom(32))
    store = _store()
    result = store.backup(scope, read_at, size, data_extents=[(5 * BS, 2 * BS), (40 * BS, 100)])
    assert sum(length for _, length in reads) == 3 * BS
    assert result.hole_blocks == 61
    restored = bytearray(size)

    def write_at(offset: int, data: bytes) -> None:
        restored[offset : offset + len(data)] = data

    store.restore_into(scope, result.manifest_id, write_at)
    assert restored == disk


def test_an_incremental_of_a_grown_disk_reads_only_the_data_past_the_parents_end() -> None:
    old_size, size = 16 * BS, 64 * BS
    disk = bytearray(os.urandom(old_size)) + bytearray(size - old_size)
    scope = Scope(name="s", id_key=os.urandom(32), data_key=os.urandom(32))
    store = _store()
    parent = store.backup(scope, lambda o, n: bytes(disk[o : o + n]), old_size)
    disk[2 * BS : 3 * BS] = os.urandom(BS)  # changed (the change map says so)
    disk[50 * BS : 50 * BS + 10] = os.urandom(10)  # written in the grown range
    reads: list[tuple[int, int]] = []

    def read_at(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return bytes(disk[offset : offset + length])

    result = store.backup(
        scope,
        read_at,
        size,
        parent=parent.manifest_id,
        changed_extents=[(2 * BS, BS), (50 * BS, 10)],
        data_extents=[(0, old_size), (50 * BS, BS)],
    )
    assert sum(length for _, length in reads) == 2 * BS  # not the 48 blocks of the new range
    restored = bytearray(size)

    def write_at(offset: int, data: bytes) -> None:
        restored[offset : offset + len(data)] = data

    store.restore_into(scope, result.manifest_id, write_at)
    assert restored == disk
