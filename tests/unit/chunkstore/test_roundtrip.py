"""Round trips: whatever goes in comes back, through every read API, for any image."""

from __future__ import annotations

import hashlib
import itertools
import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, event, given, settings

from opencbr.chunkstore import ChunkStore, MemoryBackend, Scope

from .conftest import BLOCK, image, make_scope, make_store, reader, restored

SCOPES = [make_scope("enc", encrypted=True), make_scope("plain", encrypted=False, seed=2)]


@st.composite
def images(draw: st.DrawFn) -> tuple[int, bytes]:
    """(block size, image): holes, random, compressible and duplicated runs, ragged end."""
    block = draw(st.sampled_from([512, 1024, 4096]))
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["zero", "random", "text", "dup"]))
        length = draw(st.integers(1, 3 * block))
        if kind == "zero":
            parts.append(bytes(length))
        elif kind == "random":
            parts.append(draw(st.binary(min_size=length, max_size=length)))
        elif kind == "text":
            parts.append((b"compressible %d " % length * length)[:length])
        elif parts:
            parts.append(draw(st.sampled_from(parts)))
    # an aligned copy of an earlier block, so fixed-block dedup has something to find
    data = b"".join(parts)
    if len(data) >= 2 * block and draw(st.booleans()):
        data += data[:block]
    # a copy of earlier data at another place within a block, for shifts (shift unit: 1/4)
    unit = block // 4
    if len(data) >= 3 * block and draw(st.booleans()):
        data += bytes(-len(data) % unit)
        start = draw(st.integers(0, (len(data) - 2 * block) // unit)) * unit
        data += data[start : start + 2 * block]
    return block, data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=images(), scope_index=st.integers(0, 1))
def test_backup_then_restore_gives_the_image_back(
    case: tuple[int, bytes], scope_index: int
) -> None:
    block, data = case
    scope = SCOPES[scope_index]
    store = make_store(
        block_size=block, pack_size=8 * block, batch_bytes=4 * block, shift_unit=block // 4
    )
    result = store.backup(scope, reader(data), len(data))
    event(f"shifted blocks: {bool(result.shifted_blocks)}")
    assert restored(store, scope, result.manifest_id, len(data)) == data
    with tempfile.TemporaryDirectory() as work:  # the file path: worker-thread writes
        target = Path(work) / "disk.img"
        store.restore(scope, result.manifest_id, target)
        assert target.read_bytes() == data
    assert (
        b"".join(
            d or bytes(min(block, len(data) - o))
            for o, d in store.iter_blocks(scope, result.manifest_id)
        )
        == data
    )
    manifest = store.load_manifest(result.manifest_id)
    holes = [i for i in range(len(manifest.blocks)) if not any(data[i * block : (i + 1) * block])]
    assert [i for i, b in enumerate(manifest.blocks) if b is None] == holes
    assert result.hole_blocks == len(holes)
    assert result.data_bytes == len(data) - sum(min(block, len(data) - i * block) for i in holes)
    assert store.verify(scope, result.manifest_id).ok


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_read_range_matches_the_image(data: st.DataObject) -> None:
    scope = SCOPES[0]
    content = bytes(image(seed=data.draw(st.integers(0, 5)), blocks=12))
    store = _cached_store(content)
    offset = data.draw(st.integers(0, len(content) + 10))
    length = data.draw(st.integers(0, len(content)))
    manifest_id = store.list_manifests()[0]
    assert store.read_range(scope, manifest_id, offset, length) == content[offset : offset + length]


_STORES: dict[bytes, ChunkStore] = {}


def _cached_store(content: bytes) -> ChunkStore:
    key = hashlib.sha256(content).digest()
    if key not in _STORES:
        store = make_store()
        store.backup(SCOPES[0], reader(content), len(content))
        _STORES[key] = store
    return _STORES[key]


def test_duplicate_blocks_are_stored_once(scope: Scope) -> None:
    block = bytes(range(256)) * (BLOCK // 256)
    data = block * 10 + bytes(BLOCK) * 5 + block
    store = make_store()
    result = store.backup(scope, reader(data), len(data))
    assert result.new_blocks == 1
    assert result.hole_blocks == 5
    assert result.reused_blocks == 10
    again = store.backup(scope, reader(data), len(data))
    assert again.new_blocks == 0
    assert again.new_bytes < 1024  # the manifest only


def test_scopes_do_not_share_blocks() -> None:
    data = bytes(image(seed=3, blocks=16))
    store = make_store()
    first = store.backup(make_scope("a", seed=1), reader(data), len(data))
    second = store.backup(make_scope("b", seed=2), reader(data), len(data))
    assert second.new_blocks == first.new_blocks > 0


def test_random_blocks_are_stored_raw_and_text_compressed(scope: Scope) -> None:
    import random

    rnd = random.Random(1).randbytes(BLOCK)
    text = (b"a line of text, again and again " * BLOCK)[:BLOCK]
    store = make_store()
    result = store.backup(scope, reader(rnd + text), 2 * BLOCK)
    assert BLOCK < store.stored_bytes(result.manifest_id) < BLOCK + BLOCK // 4


def test_empty_disk(scope: Scope) -> None:
    store = make_store()
    result = store.backup(scope, reader(b""), 0)
    assert restored(store, scope, result.manifest_id, 0) == b""
    assert store.load_manifest(result.manifest_id).blocks == ()


def test_progress_reaches_the_disk_size(scope: Scope) -> None:
    data = bytes(image(seed=4, blocks=40))
    calls: list[tuple[int, int]] = []
    store = make_store()
    result = store.backup(
        scope, reader(data), len(data), progress=lambda d, t: calls.append((d, t))
    )
    assert calls[-1] == (len(data), len(data))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    seen: list[tuple[int, int]] = []
    store.restore_into(
        scope, result.manifest_id, lambda o, d: None, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[-1][0] == seen[-1][1] == result.data_bytes


def test_file_object_and_callable_readers_agree(tmp_path: object, scope: Scope) -> None:
    import io

    data = bytes(image(seed=5, blocks=20))
    store = ChunkStore(MemoryBackend(), block_size=BLOCK)
    one = store.backup(scope, io.BytesIO(data), len(data))
    two = store.backup(scope, reader(data), len(data))
    blocks = store.load_manifest(one.manifest_id).blocks
    assert blocks == store.load_manifest(two.manifest_id).blocks


def test_holes_are_zeroed_run_by_run_where_the_target_can(scope: Scope) -> None:
    data = bytearray(image(seed=9, blocks=24))
    data[2 * BLOCK : 7 * BLOCK] = bytes(5 * BLOCK)  # a run of five holes
    data += bytes(BLOCK // 2)  # a short last block, a hole too
    store = ChunkStore(MemoryBackend(), block_size=BLOCK)
    result = store.backup(scope, reader(data), len(data))
    blocks = store.load_manifest(result.manifest_id).blocks
    hole_bytes = sum(len(data[i * BLOCK : (i + 1) * BLOCK]) for i, b in enumerate(blocks) if not b)
    target = bytearray(b"\xee" * len(data))
    zeroed: list[tuple[int, int]] = []

    def write_at(offset: int, chunk: bytes) -> None:
        target[offset : offset + len(chunk)] = chunk

    def zero_at(offset: int, length: int) -> None:
        zeroed.append((offset, length))
        target[offset : offset + length] = bytes(length)

    store.restore_into(scope, result.manifest_id, write_at, zero_at=zero_at)
    assert target == data
    # One call per run of holes, not one per block: no call ends where the next begins.
    assert any(o <= 2 * BLOCK and o + n >= 7 * BLOCK for o, n in zeroed)
    assert all(o + n < later for (o, n), (later, _) in itertools.pairwise(zeroed))
    assert zeroed[-1][0] + zeroed[-1][1] == len(data)
    assert sum(length for _, length in zeroed) == hole_bytes
