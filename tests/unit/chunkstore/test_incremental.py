"""Incremental backups, with and without a change map, restore exactly what a full one does."""

from __future__ import annotations

import random

import pytest

from opencbr.chunkstore import ChunkStore, Scope, WrongKey

from .conftest import BLOCK, image, make_scope, make_store, reader, restored


def mutate(data: bytearray, seed: int, writes: int = 8) -> list[tuple[int, int]]:
    """Scattered writes of 100 B .. 2 blocks (some unaligned); returns the extents written."""
    rng = random.Random(seed)
    extents = []
    for _ in range(writes):
        length = rng.randrange(100, 2 * BLOCK)
        offset = rng.randrange(0, len(data) - length)
        data[offset : offset + length] = (
            rng.randbytes(length) if rng.random() < 0.5 else bytes(length)
        )
        extents.append((offset, length))
    return extents


def three_ways(
    store: ChunkStore, scope: Scope, base: bytes, changed: bytes, extents: list[tuple[int, int]]
) -> dict[str, str]:
    parent = store.backup(scope, reader(base), len(base)).manifest_id
    with_map = store.backup(
        scope, reader(changed), len(changed), parent=parent, changed_extents=extents
    )
    without_map = store.backup(scope, reader(changed), len(changed), parent=parent)
    full = make_store().backup(scope, reader(changed), len(changed))
    assert with_map.mode == "changed-extents"
    assert without_map.mode == "full-read"
    assert full.mode == "full"
    return {
        "map": with_map.manifest_id,
        "nomap": without_map.manifest_id,
        "full_blocks": str(full.new_blocks),
    }


@pytest.mark.parametrize("seed", range(6))
def test_incrementals_restore_like_a_full_backup(seed: int, scope: Scope) -> None:
    base = image(seed, blocks=48)
    changed = bytearray(base)
    extents = mutate(changed, seed + 100)
    store = make_store()
    ids = three_ways(store, scope, bytes(base), bytes(changed), extents)
    for key in ("map", "nomap"):
        assert restored(store, scope, ids[key], len(changed)) == bytes(changed)
    fresh = make_store()
    full = fresh.backup(scope, reader(changed), len(changed)).manifest_id
    assert (
        store.load_manifest(ids["map"]).blocks
        == store.load_manifest(ids["nomap"]).blocks
        == fresh.load_manifest(full).blocks
    )


def test_change_map_reads_only_touched_blocks(scope: Scope) -> None:
    base = image(7, blocks=64)
    changed = bytearray(base)
    changed[10 * BLOCK + 5 : 10 * BLOCK + 50] = b"x" * 45
    changed[40 * BLOCK - 10 : 40 * BLOCK + 10] = b"y" * 20  # straddles two blocks
    extents = [(10 * BLOCK + 5, 45), (40 * BLOCK - 10, 20)]
    store = make_store()
    parent = store.backup(scope, reader(base), len(base))
    seen: list[int] = []

    def read_at(offset: int, length: int) -> bytes:
        seen.extend(range(offset // BLOCK, (offset + length) // BLOCK))
        return bytes(changed[offset : offset + length])

    result = store.backup(
        scope, read_at, len(changed), parent=parent.manifest_id, changed_extents=extents
    )
    assert sorted(seen) == [10, 39, 40]
    assert result.read_bytes == 3 * BLOCK
    assert restored(store, scope, result.manifest_id, len(changed)) == bytes(changed)


@pytest.mark.parametrize("new_size", [30 * BLOCK + 17, 40 * BLOCK, 50 * BLOCK + 1])
def test_disk_resized_between_backups(new_size: int, scope: Scope) -> None:
    base = bytes(image(8, blocks=40))[: 40 * BLOCK - 300]
    changed = bytearray(image(8, blocks=60))[:new_size]
    changed[: len(base)] = base[: len(changed)] if len(base) > len(changed) else base
    store = make_store()
    parent = store.backup(scope, reader(base), len(base)).manifest_id
    result = store.backup(scope, reader(changed), len(changed), parent=parent, changed_extents=[])
    assert restored(store, scope, result.manifest_id, len(changed)) == bytes(changed)


def test_change_map_without_parent_reads_everything(scope: Scope) -> None:
    data = bytes(image(9, blocks=16))
    result = make_store().backup(scope, reader(data), len(data), changed_extents=[(0, 10)])
    assert result.mode == "full"
    assert result.read_bytes == len(data)


def test_extent_outside_the_disk_is_refused(scope: Scope) -> None:
    data = bytes(image(10, blocks=8))
    store = make_store()
    parent = store.backup(scope, reader(data), len(data)).manifest_id
    with pytest.raises(ValueError, match="outside the disk"):
        store.backup(
            scope, reader(data), len(data), parent=parent, changed_extents=[(len(data) - 10, 20)]
        )


def test_parent_of_another_scope_is_refused(scope: Scope) -> None:
    data = bytes(image(11, blocks=8))
    store = make_store()
    parent = store.backup(scope, reader(data), len(data)).manifest_id
    with pytest.raises(WrongKey):
        store.backup(
            make_scope("other", seed=5), reader(data), len(data), parent=parent, changed_extents=[]
        )


def test_parent_blocks_missing_from_the_index_are_read_again(scope: Scope) -> None:
    data = bytes(image(12, blocks=16))
    store = make_store()
    parent = store.backup(scope, reader(data), len(data)).manifest_id
    for name in list(store.backend.list("index/")) + list(store.backend.list("packs/")):
        store.backend.delete(name)
    result = store.backup(scope, reader(data), len(data), parent=parent, changed_extents=[])
    assert result.read_bytes == result.data_bytes > 0  # holes stay holes without a read
    assert result.new_blocks > 0
    assert restored(store, scope, result.manifest_id, len(data)) == data
