"""Damage and failure: every problem is a clear error naming what is wrong, never wrong data."""

from __future__ import annotations

import pytest

from opencbr.chunkstore import (
    ChunkStore,
    CorruptBlock,
    CorruptObject,
    MemoryBackend,
    MissingObject,
    Scope,
    UnknownBlock,
    WrongKey,
)

from .conftest import FaultyBackend, image, make_scope, make_store, reader, restored


def backed_up(scope: Scope, blocks: int = 48) -> tuple[ChunkStore, MemoryBackend, str, bytes]:
    backend = MemoryBackend()
    store = make_store(backend)
    data = bytes(image(21, blocks=blocks))
    return store, backend, store.backup(scope, reader(data), len(data)).manifest_id, data


def packs(backend: MemoryBackend) -> list[str]:
    return sorted(n for n in backend.objects if n.startswith("packs/"))


@pytest.mark.parametrize("fail_at", [1, 2, 4])
def test_failed_put_leaves_the_store_consistent(fail_at: int, scope: Scope) -> None:
    backend = FaultyBackend(MemoryBackend())
    store = make_store(backend, pack_size=16 * 1024)
    data = bytes(image(22, blocks=96))
    pack_puts = []

    def fail(name: str) -> bool:
        if not name.startswith("packs/"):
            return False
        pack_puts.append(name)
        return len(pack_puts) == fail_at

    backend.fail_put = fail
    with pytest.raises(OSError, match="injected"):
        store.backup(scope, reader(data), len(data))
    assert store.list_manifests() == []
    assert list(backend.list("locks/")) == []
    report = store.verify_store([scope])
    assert report.ok, report.errors
    backend.fail_put = lambda name: False
    result = store.backup(scope, reader(data), len(data))
    assert restored(store, scope, result.manifest_id, len(data)) == data
    assert store.verify_store([scope]).ok


@pytest.mark.parametrize("prefix", ["index/", "manifests/"])
def test_failed_index_or_manifest_put_leaves_no_manifest(prefix: str, scope: Scope) -> None:
    backend = FaultyBackend(MemoryBackend())
    store = make_store(backend)
    data = bytes(image(23, blocks=32))
    backend.fail_put = lambda name: name.startswith(prefix)
    with pytest.raises(OSError):
        store.backup(scope, reader(data), len(data))
    assert store.list_manifests() == []
    report = store.verify_store([scope])
    assert report.ok
    # packs without index (index put failed) or indexed blocks no manifest uses: gc removes both
    assert bool(report.unindexed_packs) == (prefix == "index/")
    backend.fail_put = lambda name: False
    result = store.backup(scope, reader(data), len(data))
    assert restored(store, scope, result.manifest_id, len(data)) == data


def test_flipped_byte_is_found_by_verify_and_restore(scope: Scope) -> None:
    store, backend, manifest_id, data = backed_up(scope)
    name = packs(backend)[0]
    pack = bytearray(backend.objects[name])
    pack[-5] ^= 0x40  # inside the last blob of the pack
    backend.objects[name] = bytes(pack)
    report = store.verify(scope, manifest_id)
    assert not report.ok
    bad = [e for e in report.errors if isinstance(e, CorruptBlock)]
    assert len(bad) == 1
    assert manifest_id in str(bad[0])
    assert bad[0].block_id.hex() in str(bad[0])
    whole = store.verify_store([scope])
    assert any(isinstance(e, CorruptObject) and name in str(e) for e in whole.errors)
    assert any(isinstance(e, CorruptBlock) and e.block_id == bad[0].block_id for e in whole.errors)
    with pytest.raises(CorruptBlock) as raised:
        restored(store, scope, manifest_id, len(data))
    assert raised.value.block_id == bad[0].block_id
    assert manifest_id in str(raised.value)


def test_restore_to_a_file_removes_the_partial_file(tmp_path: object, scope: Scope) -> None:
    from pathlib import Path

    store, backend, manifest_id, _ = backed_up(scope)
    name = packs(backend)[-1]
    backend.objects[name] = backend.objects[name][:-100]
    target = Path(str(tmp_path)) / "disk.img"
    with pytest.raises(CorruptBlock, match="truncated"):
        store.restore(scope, manifest_id, target)
    assert list(Path(str(tmp_path)).iterdir()) == []


def test_flipped_byte_in_a_plain_scope_is_found_by_the_hash() -> None:
    plain = make_scope("plain", encrypted=False)
    store, backend, manifest_id, data = backed_up(plain)
    name = packs(backend)[0]
    pack = bytearray(backend.objects[name])
    pack[-1] ^= 1
    backend.objects[name] = bytes(pack)
    with pytest.raises(CorruptBlock, match=r"does not hash|does not decompress"):
        restored(store, plain, manifest_id, len(data))


def test_missing_pack_names_the_pack_block_and_manifest(scope: Scope) -> None:
    store, backend, manifest_id, data = backed_up(scope)
    name = packs(backend)[0]
    del backend.objects[name]
    with pytest.raises(MissingObject) as raised:
        restored(store, scope, manifest_id, len(data))
    assert name in str(raised.value)
    assert manifest_id in str(raised.value)
    assert not store.verify_store([scope]).ok


def test_manifest_naming_unknown_blocks(scope: Scope) -> None:
    _store, backend, manifest_id, data = backed_up(scope)
    for name in list(backend.objects):
        if name.startswith(("index/", "packs/")):
            del backend.objects[name]
    fresh = make_store(backend)  # a new process: nothing cached
    with pytest.raises(UnknownBlock) as raised:
        restored(fresh, scope, manifest_id, len(data))
    assert manifest_id in str(raised.value)
    report = fresh.verify_store([scope])
    assert any(isinstance(e, UnknownBlock) for e in report.errors)


def test_damaged_manifest_or_index_is_reported(scope: Scope) -> None:
    store, backend, manifest_id, _ = backed_up(scope)
    name = f"manifests/{manifest_id}"
    backend.objects[name] = backend.objects[name][:-1] + b"\0"
    with pytest.raises(CorruptObject, match=manifest_id):
        store.load_manifest(manifest_id)
    index = next(n for n in backend.objects if n.startswith("index/"))
    backend.objects[index] = b"garbage"
    report = make_store(backend).verify_store([scope])
    assert any(isinstance(e, CorruptObject) and index in str(e) for e in report.errors)


def test_missing_manifest(scope: Scope) -> None:
    store, _, _, _ = backed_up(scope)
    with pytest.raises(MissingObject):
        store.restore_into(scope, "0" * 64, lambda o, d: None)
    with pytest.raises(MissingObject):
        store.restore_into(scope, "not-an-id", lambda o, d: None)


@pytest.mark.parametrize("wrong", ["data_key", "id_key", "name", "unencrypted"])
def test_wrong_key_is_refused_before_any_write(wrong: str, scope: Scope) -> None:
    store, _, manifest_id, _ = backed_up(scope)
    other = {
        "data_key": Scope(scope.name, scope.id_key, bytes(32)),
        "id_key": Scope(scope.name, bytes(32), scope.data_key),
        "name": Scope("another", scope.id_key, scope.data_key),
        "unencrypted": Scope(scope.name, scope.id_key, None),
    }[wrong]
    writes: list[int] = []
    with pytest.raises(WrongKey, match=manifest_id):
        store.restore_into(other, manifest_id, lambda o, d: writes.append(o))
    assert writes == []
    with pytest.raises(WrongKey):
        store.verify(other, manifest_id)


def test_short_read_from_the_source_is_an_error(scope: Scope) -> None:
    data = bytes(image(24, blocks=8))
    with pytest.raises(Exception, match="source returned"):
        make_store().backup(scope, reader(data[:-10]), len(data))
