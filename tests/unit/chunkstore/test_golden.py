"""Golden files of the on-disk formats: a small store committed under tests/golden/chunkstore.

Two directions are checked:

* decode: the committed store still restores to the same images and verifies clean, so a
  change in the code cannot silently stop reading stores written before it;
* encode: writing the same inputs with the same keys, clock and settings reproduces every
  committed object byte for byte, so a format change cannot slip in unnoticed.

Byte-for-byte reproduction needs deterministic AES-GCM nonces; a normal store draws them at
random. The golden store uses `ChunkStore(deterministic=True)`, which derives each nonce from
the block id under the data key (see codec.deterministic_nonces). The decode test does not
depend on that: stores with random nonces decode the same way.

To regenerate after an intended format change: OPENCBR_WRITE_GOLDEN=1 uv run pytest <this file>
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from opencbr.chunkstore import Backend, ChunkStore, LocalDirBackend, MemoryBackend, Scope

from .conftest import FakeClock, restored

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "chunkstore" / "store"
BLOCK = 4096
SCOPES = [
    Scope(
        "golden-encrypted",
        hashlib.sha256(b"golden id key 1").digest(),
        hashlib.sha256(b"golden data key 1").digest(),
    ),
    Scope("golden-plain", hashlib.sha256(b"golden id key 2").digest(), None),
]


def golden_image(variant: int) -> bytes:
    """12.5 blocks: random, text, holes, a duplicate; variant 1 changes two places.

    Variant 2 is the noise, then a copy of it that starts a quarter block further on: two of
    its blocks are shifts of the first blocks (a version 2 manifest)."""
    noise = hashlib.shake_128(b"golden noise").digest(4 * BLOCK)
    if variant == 2:
        return noise + bytes(BLOCK // 4) + noise[: 3 * BLOCK] + b"end" * 100
    text = (b"golden text line, golden text line %d\n" * 400)[: 3 * BLOCK]
    data = bytearray(
        noise[: 2 * BLOCK]
        + bytes(2 * BLOCK)
        + text
        + noise[:BLOCK]
        + bytes(BLOCK)
        + noise[2 * BLOCK :]
        + b"tail" * 512
    )
    if variant:
        data[100:200] = b"x" * 100
        data[9 * BLOCK + 7 : 9 * BLOCK + 9] = b"yz"
    return bytes(data)


def write_golden(store: ChunkStore) -> list[str]:
    """The golden store's content: per scope a full and an incremental backup (change map),
    and a full backup of an image with a shifted copy."""
    ids = []
    for scope in SCOPES:
        base, changed = golden_image(0), golden_image(1)
        full = store.backup(scope, _reader(base), len(base)).manifest_id
        incr = store.backup(
            scope,
            _reader(changed),
            len(changed),
            parent=full,
            changed_extents=[(100, 100), (9 * BLOCK + 7, 2)],
        ).manifest_id
        copied = golden_image(2)
        shifted = store.backup(scope, _reader(copied), len(copied)).manifest_id
        ids += [full, incr, shifted]
    return ids


def _reader(data: bytes) -> Callable[[int, int], bytes]:
    return lambda offset, length: data[offset : offset + length]


def golden_store(backend: Backend) -> ChunkStore:
    return ChunkStore(
        backend,
        block_size=BLOCK,
        pack_size=16 * 1024,
        workers=1,  # shifts found do not depend on the threads' timing
        clock=FakeClock(1_750_000_000.0),
        deterministic=True,
        shift_unit=BLOCK // 4,
    )


def objects(backend: MemoryBackend) -> dict[str, bytes]:
    return {name: data for name, data in backend.objects.items() if not name.startswith("locks/")}


def test_writing_the_golden_inputs_reproduces_the_golden_store() -> None:
    backend = MemoryBackend()
    write_golden(golden_store(backend))
    written = objects(backend)
    if os.environ.get("OPENCBR_WRITE_GOLDEN"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for name, data in written.items():
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_bytes(data)
    committed = {
        p.relative_to(GOLDEN).as_posix(): p.read_bytes() for p in GOLDEN.rglob("*") if p.is_file()
    }
    assert sorted(written) == sorted(committed)
    for name, data in written.items():
        assert data == committed[name], f"{name} differs from the golden file"


@pytest.mark.parametrize("scope_index", [0, 1])
def test_the_golden_store_restores_and_verifies(tmp_path: Path, scope_index: int) -> None:
    shutil.copytree(GOLDEN, tmp_path / "store")  # reads write lock objects: not in the repo
    store = ChunkStore(LocalDirBackend(tmp_path / "store"))
    scope = SCOPES[scope_index]
    manifests = [store.load_manifest(m) for m in store.list_manifests()]
    mine = [m for m in manifests if m.scope == scope.name]
    assert len(mine) == 3
    (incr,) = (m for m in mine if m.parent)
    (full,) = (m for m in mine if m.manifest_id == incr.parent)
    (copied,) = (m for m in mine if m not in (full, incr))
    assert full.block_size == BLOCK
    assert full.blocks[2] is None
    assert full.blocks[3] is None
    assert sorted(copied.shifted) == [5, 6]
    assert copied.shifted[5].offset == 3 * BLOCK // 4
    for manifest, variant in ((full, 0), (incr, 1), (copied, 2)):
        image = golden_image(variant)
        assert restored(store, scope, manifest.manifest_id, len(image)) == image
        (tmp_path / "out.img").unlink(missing_ok=True)
        store.restore(scope, manifest.manifest_id, tmp_path / "out.img")
        assert (tmp_path / "out.img").read_bytes() == image
    report = store.verify_store(SCOPES)
    assert report.ok
    assert report.blocks > 0
    assert not report.unindexed_packs
