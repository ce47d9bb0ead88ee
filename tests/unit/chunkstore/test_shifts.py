"""Shifted copies: blocks stored as a cut of two other blocks instead of a blob of their own."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from opencbr.chunkstore import ChunkStore, CorruptBlock, CorruptObject, MemoryBackend, Scope
from opencbr.chunkstore.formats import Shift, encode_manifest, object_digest

from .conftest import BLOCK, FaultyBackend, make_store, reader, restored

UNIT = 512
COPY_SHIFT = 3 * UNIT  # the copy starts this far into a block


def shifted_image(seed: int = 1) -> bytes:
    """8 blocks of random data, then, starting 3 units into block 8, a copy of them."""
    original = random.Random(seed).randbytes(8 * BLOCK)
    tail = bytes(BLOCK - COPY_SHIFT)
    return original + bytes(COPY_SHIFT) + original + tail  # 17 blocks


def shift_store(**kwargs: object) -> ChunkStore:
    """One worker: which copies are found then does not depend on the threads' timing (with
    several, a copy of data still in flight in another worker may be stored as a blob)."""
    return make_store(shift_unit=UNIT, workers=1, **kwargs)


def test_a_shifted_copy_is_stored_as_shifts_of_the_original(scope: Scope) -> None:
    data = shifted_image()
    store = shift_store()
    result = store.backup(scope, reader(data), len(data))
    manifest = store.load_manifest(result.manifest_id)
    # Blocks 9..15 lie wholly inside the copy: block 9 + m is the tail of block m and the
    # head of block m + 1 of the original.
    offset = BLOCK - COPY_SHIFT
    assert dict(manifest.shifted) == {
        9 + m: Shift(manifest.blocks[m], offset, manifest.blocks[m + 1]) for m in range(7)
    }
    assert result.shifted_blocks == 7
    assert result.new_blocks == 8 + 2  # the original, and the copy's two ragged ends
    plain_store = make_store(shift_unit=0)
    plain = plain_store.backup(scope, reader(data), len(data))
    assert plain.shifted_blocks == 0
    stored = store.stored_bytes(result.manifest_id)
    assert stored < plain_store.stored_bytes(plain.manifest_id) - 6 * BLOCK
    assert manifest.blocks == plain_store.load_manifest(plain.manifest_id).blocks


def test_shifted_blocks_read_back_through_every_read_api(scope: Scope, tmp_path: Path) -> None:
    data = shifted_image()
    store = shift_store()
    manifest_id = store.backup(scope, reader(data), len(data)).manifest_id
    assert restored(store, scope, manifest_id, len(data)) == data
    store.restore(scope, manifest_id, tmp_path / "disk.img")
    assert (tmp_path / "disk.img").read_bytes() == data
    streamed = b"".join(
        d or bytes(min(BLOCK, len(data) - o)) for o, d in store.iter_blocks(scope, manifest_id)
    )
    assert streamed == data
    assert (
        store.read_range(scope, manifest_id, 10 * BLOCK - 7, 3 * BLOCK)
        == data[10 * BLOCK - 7 : 13 * BLOCK - 7]
    )
    report = store.verify(scope, manifest_id)
    assert report.ok
    assert store.verify_store([scope]).ok


def test_incrementals_keep_the_parents_shifts(scope: Scope) -> None:
    data = shifted_image()
    changed = bytearray(data)
    changed[100:110] = b"x" * 10  # block 0 of the original changes; the copy does not
    store = shift_store()
    full = store.backup(scope, reader(data), len(data))
    parent = store.load_manifest(full.manifest_id)
    with_map = store.backup(
        scope, reader(changed), len(data), parent=full.manifest_id, changed_extents=[(100, 10)]
    )
    without_map = store.backup(scope, reader(changed), len(data), parent=full.manifest_id)
    assert (with_map.new_blocks, without_map.new_blocks) == (1, 0)  # block 0, stored once
    for result in (with_map, without_map):
        manifest = store.load_manifest(result.manifest_id)
        assert manifest.shifted == parent.shifted
        assert len(manifest.shifted) == 7
        assert restored(store, scope, result.manifest_id, len(data)) == bytes(changed)


def test_a_run_read_in_the_middle_of_a_batch_serves_as_an_original(scope: Scope) -> None:
    """A change map's short runs share a batch. The first block of each run is an original
    too, with the parent's block before it: here block 5, after block 4 that is not read."""
    data = shifted_image()
    parent_image = data[: 8 * BLOCK] + bytes(len(data) - 8 * BLOCK)
    # Batches of 6 blocks, each taken before the next is read: [0, 4) + [5, 7), [7, 13), ...
    store = shift_store(batch_bytes=6 * BLOCK, window=1)
    parent = store.backup(scope, reader(parent_image), len(data)).manifest_id
    extents = [(0, 4 * BLOCK), (5 * BLOCK, 12 * BLOCK)]
    result = store.backup(scope, reader(data), len(data), parent=parent, changed_extents=extents)
    manifest = store.load_manifest(result.manifest_id)
    offset = BLOCK - COPY_SHIFT
    # Block 12 would be a shift of blocks 3 and 4, but block 4 was not read: no original.
    assert dict(manifest.shifted) == {
        9 + m: Shift(manifest.blocks[m], offset, manifest.blocks[m + 1]) for m in range(7) if m != 3
    }
    assert result.new_blocks == 3  # the copy's two ragged ends, and block 12
    assert restored(store, scope, result.manifest_id, len(data)) == data


def test_garbage_collection_keeps_the_blocks_shifts_are_cut_from(scope: Scope) -> None:
    data = shifted_image()
    changed = bytearray(data)
    changed[: 8 * BLOCK] = random.Random(9).randbytes(8 * BLOCK)  # the original is gone
    store = shift_store(pack_size=BLOCK)  # a pack per blob: each old block could go alone
    full = store.backup(scope, reader(data), len(data))
    incr = store.backup(
        scope, reader(changed), len(data), parent=full.manifest_id, changed_extents=[(0, 8 * BLOCK)]
    )
    assert len(store.load_manifest(incr.manifest_id).shifted) == 7  # cut from the old blocks
    plan = store.gc_plan([incr.manifest_id], grace=0)
    assert plan.dead_manifests == (full.manifest_id,)
    assert plan.dead_packs == ()
    store.gc_execute(plan)
    assert restored(store, scope, incr.manifest_id, len(data)) == bytes(changed)
    assert store.verify_store([scope]).ok


def test_a_source_that_changes_while_it_is_read_gets_no_shift(scope: Scope) -> None:
    data = shifted_image()
    changed_later = bytes(b ^ 0xFF for b in data)

    def read_at(offset: int, length: int) -> bytes:
        # Re-reads of two blocks (checking a shift) see the disk after a change.
        source = changed_later if length == 2 * BLOCK else data
        return source[offset : offset + length]

    store = shift_store()
    result = store.backup(scope, read_at, len(data))
    assert result.shifted_blocks == 0
    assert restored(store, scope, result.manifest_id, len(data)) == data


def test_a_wrong_shift_is_found_by_restore_and_verify(scope: Scope) -> None:
    data = shifted_image()
    store = shift_store()
    good = store.load_manifest(store.backup(scope, reader(data), len(data)).manifest_id)
    shifted = dict(good.shifted)
    shifted[9] = shifted[9]._replace(offset=shifted[9].offset + UNIT)
    bad = encode_manifest(scope, good.disk_size, BLOCK, 0, None, good.blocks, shifted)
    bad_id = object_digest(bad)
    store.backend.put(f"manifests/{bad_id}", bad)
    with pytest.raises(CorruptBlock) as caught:
        restored(store, scope, bad_id, len(data))
    assert caught.value.manifest_id == bad_id
    assert "block 9 does not match its id" in str(caught.value)
    report = store.verify(scope, bad_id)
    assert [type(e) for e in report.errors] == [CorruptBlock]


def test_a_shift_table_entry_on_a_hole_is_a_corrupt_manifest(scope: Scope) -> None:
    blocks = [None, b"\x01" * 32]
    bad = encode_manifest(
        scope, 2 * BLOCK, BLOCK, 0, None, blocks, {0: Shift(b"a" * 32, 1, b"b" * 32)}
    )
    name = object_digest(bad)
    store = shift_store()
    store.backend.put(f"manifests/{name}", bad)
    with pytest.raises(CorruptObject, match="shift table entry for block 0"):
        store.load_manifest(name)


def test_without_shifts_a_manifest_keeps_the_version_1_layout(scope: Scope) -> None:
    data = shifted_image()
    for unit, version in ((0, 1), (UNIT, 2)):
        store = make_store(shift_unit=unit, workers=1)
        manifest_id = store.backup(scope, reader(data), len(data)).manifest_id
        assert store.backend.get(f"manifests/{manifest_id}")[8] == version


def test_the_first_shift_raises_the_store_version_before_its_manifest(scope: Scope) -> None:
    """Software that reads only version 1 then refuses the store instead of reporting its
    manifests as damaged."""
    data = shifted_image()
    backend = FaultyBackend(MemoryBackend())  # records the order of the puts
    store = shift_store(backend=backend)
    assert json.loads(backend.get("config")) == {"version": 1}
    store.backup(scope, reader(data[: 8 * BLOCK]), 8 * BLOCK)  # no copy in it
    assert json.loads(backend.get("config")) == {"version": 1}
    backend.puts.clear()
    store.backup(scope, reader(data), len(data))
    assert json.loads(backend.get("config")) == {"version": 2}
    assert next(n for n in backend.puts if n == "config" or n.startswith("manifests/")) == "config"
    assert shift_store(backend=backend).version == 2
