"""Catalogue objects (framed opaque blobs the caller names) and what `verify_store` says about
damage: which manifests need a missing, truncated or corrupt pack."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from opencbr.chunkstore import ChunkStore, CorruptObject, MemoryBackend, Scope
from opencbr.chunkstore.catalogue import Catalogue, frame, unframe
from opencbr.chunkstore.index import pack_object

from .conftest import BLOCK, make_store, reader

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "chunkstore" / "catalogue"
GOLDEN_BLOB = b"an opaque sealed record \x00\x01\x02" * 3


def test_objects_round_trip_replace_and_list() -> None:
    catalogue = Catalogue(MemoryBackend())
    assert catalogue.get("backups", "b1") is None
    catalogue.put("backups", "b1", b"one")
    catalogue.put("backups", "b2", b"two")
    catalogue.put("backups", "b1", b"one again")
    catalogue.put("domains", "d1", b"domain")
    assert catalogue.get("backups", "b1") == b"one again"
    assert catalogue.names("backups") == ["b1", "b2"]
    catalogue.delete("backups", "b1")
    catalogue.delete("backups", "b1")  # deleting twice is no error
    assert catalogue.names("backups") == ["b2"]


@pytest.mark.parametrize(("kind", "name"), [("Backups", "x"), ("backups", "../x"), ("b", "")])
def test_names_are_checked(kind: str, name: str) -> None:
    with pytest.raises(ValueError, match="bad catalogue object name"):
        Catalogue(MemoryBackend()).put(kind, name, b"")


def test_a_damaged_object_is_found_without_keys() -> None:
    backend = MemoryBackend()
    catalogue = Catalogue(backend)
    catalogue.put("backups", "b1", b"record")
    catalogue.put("backups", "b2", b"record")
    data = bytearray(backend.get("catalogue/backups/b1"))
    data[-1] ^= 1
    backend.put("catalogue/backups/b1", bytes(data))
    with pytest.raises(CorruptObject, match="checksum"):
        catalogue.get("backups", "b1")
    assert [e.name for e in catalogue.check()] == ["catalogue/backups/b1"]
    with pytest.raises(CorruptObject, match="magic"):
        unframe(b"something else entirely" * 3, "catalogue/x/y")


def test_the_frame_matches_its_golden_file() -> None:
    """The frame's bytes are fixed: a change to them must be a new version, not a surprise."""
    path = GOLDEN / "framed-record"
    if os.environ.get("OPENCBR_WRITE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(frame(GOLDEN_BLOB))
    assert frame(GOLDEN_BLOB) == path.read_bytes()
    assert unframe(path.read_bytes(), "golden") == GOLDEN_BLOB


def _two_backups(store: ChunkStore, scope: Scope) -> tuple[str, str, str, str]:
    """Two backups of unrelated data (one pack each): (manifest, pack) of each."""
    results = []
    for seed in (1, 2):
        data = random.Random(seed).randbytes(8 * BLOCK)
        manifest = store.backup(scope, reader(data), len(data)).manifest_id
        index = store.index.refresh()
        (pack,) = {index[b].pack for b in store.load_manifest(manifest).stored_ids()}
        results += [manifest, pack]
    return results[0], results[1], results[2], results[3]


def test_verify_names_the_manifests_a_missing_pack_hurts(scope: Scope) -> None:
    store = make_store()
    first, first_pack, second, _ = _two_backups(store, scope)
    store.backend.delete(pack_object(first_pack))
    report = store.verify_store([scope], read_data=False)
    assert not report.ok
    assert report.damaged == {first: {pack_object(first_pack)}}
    assert second not in report.damaged


def test_verify_finds_a_truncated_pack_without_reading_the_data(scope: Scope) -> None:
    store = make_store()
    _, _, second, second_pack = _two_backups(store, scope)
    name = pack_object(second_pack)
    data = store.backend.get(name)
    store.backend.put(name, data[: len(data) - 10])
    report = store.verify_store([], read_data=False)
    assert any("truncated" in str(e) and name in str(e) for e in report.errors)
    assert report.damaged == {second: {name}}


def test_deep_verify_names_the_manifest_of_a_corrupt_block(scope: Scope) -> None:
    store = make_store()
    first, first_pack, _, _ = _two_backups(store, scope)
    name = pack_object(first_pack)
    data = bytearray(store.backend.get(name))
    data[-100] ^= 0xFF
    store.backend.put(name, bytes(data))
    assert store.verify_store([scope], read_data=False).ok  # the table and the end are intact
    report = store.verify_store([scope], read_data=True)
    assert report.damaged == {first: {name}}


def test_catalogue_objects_are_counted_and_checked(scope: Scope) -> None:
    store = make_store()
    store.catalogue.put("backups", "b1", b"x")
    store.backend.put("catalogue/backups/b2", b"not framed at all, not at all")
    report = store.verify_store([scope], read_data=False)
    assert report.catalogue_objects == 2
    assert [str(e) for e in report.errors] == [
        "object catalogue/backups/b2 is corrupt: not a catalogue object (bad magic or version)"
    ]
