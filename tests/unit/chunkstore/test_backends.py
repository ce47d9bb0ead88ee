"""The backend contract, for both implementations; sparse restores through the local one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opencbr.chunkstore import (
    Backend,
    ChunkStore,
    ChunkStoreError,
    LocalDirBackend,
    MemoryBackend,
    MissingObject,
    Scope,
    open_backend,
    open_store,
)

from .conftest import BLOCK, image, reader


@pytest.fixture(params=["memory", "local"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return MemoryBackend() if request.param == "memory" else LocalDirBackend(tmp_path / "objects")


def test_put_get_list_delete(backend: Backend) -> None:
    backend.put("packs/ab/abcd", b"0123456789")
    backend.put("index/1", b"x")
    assert backend.get("packs/ab/abcd") == b"0123456789"
    assert backend.get("packs/ab/abcd", 2, 3) == b"234"
    assert backend.get("packs/ab/abcd", 8, 10) == b"89"  # short at the end, never padded
    assert sorted(backend.list("packs/")) == ["packs/ab/abcd"]
    assert sorted(backend.list("")) == ["index/1", "packs/ab/abcd"]
    assert backend.exists("index/1")
    backend.delete("index/1")
    backend.delete("index/1")  # deleting twice is fine (retries after crashes)
    assert not backend.exists("index/1")
    with pytest.raises(MissingObject):
        backend.get("index/1")
    assert list(backend.list("locks/")) == []


@pytest.mark.parametrize("name", ["", "/abs", "a/../b", "a//b", "dir/.tmp-x"])
def test_bad_names_are_refused(backend: Backend, name: str) -> None:
    with pytest.raises(ValueError, match="invalid object name"):
        backend.put(name, b"x")


def test_local_put_leaves_no_temp_files(tmp_path: Path) -> None:
    backend = LocalDirBackend(tmp_path)
    backend.put("manifests/m", b"a" * 1000)
    assert [p.name for p in (tmp_path / "manifests").iterdir()] == ["m"]
    (tmp_path / "manifests" / ".tmp-crashed").write_bytes(b"partial")  # a crashed writer
    assert list(backend.list("manifests/")) == ["manifests/m"]


def test_restore_to_a_file_keeps_holes(tmp_path: Path) -> None:
    scope = Scope("s", b"k" * 32, b"d" * 32)
    data = bytes(64 * 1024) + b"data" * 16384 + bytes(1024 * 1024) + b"end"
    store = ChunkStore(LocalDirBackend(tmp_path / "store"), block_size=BLOCK)
    result = store.backup(scope, reader(data), len(data))
    target = tmp_path / "disk.img"
    restored = store.restore(scope, result.manifest_id, target)
    assert target.read_bytes() == data
    assert restored.written_bytes == 64 * 1024 + 3
    assert os.stat(target).st_blocks * 512 < 256 * 1024  # the 1 MiB hole is not allocated
    with pytest.raises(FileExistsError):
        store.restore(scope, result.manifest_id, target)


def test_backup_from_a_file_object(tmp_path: Path) -> None:
    scope = Scope("s", b"k" * 32, None)
    data = bytes(image(41, blocks=30))
    path = tmp_path / "disk.img"
    path.write_bytes(data)
    store = open_store(tmp_path / "store")
    with open(path, "rb") as f:
        result = store.backup(scope, f, len(data))
    assert store.read_range(scope, result.manifest_id, 5000, 70000) == data[5000:75000]


def test_open_backend_locations(tmp_path: Path) -> None:
    assert isinstance(open_backend(tmp_path / "a"), LocalDirBackend)
    assert isinstance(open_backend(f"file://{tmp_path}/b"), LocalDirBackend)
    assert isinstance(open_backend("memory://"), MemoryBackend)
    with pytest.raises(ChunkStoreError):
        open_backend("ftp://host/x")


def test_a_store_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    backend = LocalDirBackend(tmp_path)
    backend.put("config", b'{"version": 99}')
    with pytest.raises(ChunkStoreError, match="version 99"):
        ChunkStore(backend)
