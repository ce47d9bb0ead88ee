"""Locks of dead holders never stall collection: a real process holding a lock is killed with
-9 (local-directory store, and the S3 store when scripts/setup-swift.sh runs one); a lock of
another host counts until its lease runs out; a live holder's heartbeat keeps it."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opencbr.chunkstore import ChunkStore, LockLost, Scope, StoreLocked
from opencbr.chunkstore.backend import Backend, LocalDirBackend
from opencbr.chunkstore.locks import CLOCK_SKEW, HeldLock, LockInfo
from opencbr.chunkstore.s3 import S3Backend
from tests.integration.chunkstore.test_s3_backend import s3_backend, s3_bucket, s3_options

__all__ = ["s3_backend", "s3_bucket"]

BLOCK = 4096
SCOPE = Scope("scope-a", b"i" * 32, b"k" * 32)

# A holder in its own process: takes the lock, says so, then waits to be killed.
_HOLDER = """
import json, sys, time
from opencbr.chunkstore.backend import LocalDirBackend
from opencbr.chunkstore.locks import HeldLock
from opencbr.chunkstore.s3 import S3Backend, S3Options

args = json.loads(sys.argv[1])
if args["s3"]:
    backend = S3Backend.connect(args["where"], S3Options(**args["s3"]))
else:
    backend = LocalDirBackend(args["where"])
lock = HeldLock(backend, args["kind"], time.time, manifests=tuple(args["manifests"]),
                refresh_every=1.0)
print(lock.info.name, flush=True)
time.sleep(600)
"""

Where = tuple[Backend, str, dict[str, object]]


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    """(backend, its address for the holder process, S3 options or {})."""
    if request.param == "local":
        path = tmp_path / "store"
        return LocalDirBackend(path), str(path), {}
    backend: S3Backend = request.getfixturevalue("s3_backend")
    o = s3_options()
    url = f"s3://{backend.bucket}/{backend.prefix.rstrip('/')}"
    s3 = {
        "endpoint": o.endpoint,
        "region": o.region,
        "access_key": o.access_key,
        "secret_key": o.secret_key,
    }
    return backend, url, s3


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()


def hold(
    holders: list[subprocess.Popen[str]], where: Where, kind: str, *manifests: str
) -> tuple[subprocess.Popen[str], str]:
    _, address, s3 = where
    args = {"kind": kind, "where": address, "manifests": list(manifests), "s3": s3}
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, json.dumps(args)], stdout=subprocess.PIPE, text=True
    )
    holders.append(process)
    assert process.stdout is not None
    name = process.stdout.readline().strip()
    assert name.startswith(f"locks/{kind}-"), name
    return process, name


def kill(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def image(seed: int, blocks: int = 24) -> bytes:
    return b"".join(bytes([seed, i % 251]) * (BLOCK // 2) for i in range(blocks))


def backed_up(store: ChunkStore, data: bytes) -> str:
    return store.backup(SCOPE, io.BytesIO(data), len(data)).manifest_id


def test_a_collection_killed_with_9_does_not_stall_the_next(
    where: Where, holders: list[subprocess.Popen[str]]
) -> None:
    backend = where[0]
    store = ChunkStore(backend, block_size=BLOCK, workers=1)
    dead = backed_up(store, image(1))
    store.delete_manifest(dead)
    collector, _ = hold(holders, where, "gc")
    with pytest.raises(StoreLocked):  # alive: it holds the store
        store.gc_execute(store.gc_plan())
    kill(collector)
    result = store.gc_execute(store.gc_plan())
    assert result.deleted_packs
    assert store.locks() == []


def test_dead_backup_and_restore_locks_pin_nothing(
    where: Where, holders: list[subprocess.Popen[str]]
) -> None:
    backend = where[0]
    store = ChunkStore(backend, block_size=BLOCK, workers=1)
    read = backed_up(store, image(2))
    store.delete_manifest(read)
    restorer, _ = hold(holders, where, "restore", read)
    backup, _ = hold(holders, where, "backup")
    assert store.gc_execute(store.gc_plan()).deleted_packs == ()  # both alive: all kept
    kill(restorer)
    kill(backup)
    assert store.gc_execute(store.gc_plan()).deleted_packs
    assert store.locks() == []


def _foreign_lock(backend: Backend, refreshed: float, lease: float = 180.0) -> str:
    info = LockInfo(
        name="locks/gc-" + "f" * 32,
        kind="gc",
        created=refreshed - 1000,
        refreshed=refreshed,
        host="elsewhere",
        pid=1,
        lease=lease,
        host_id="another-host",
        started=1,
    )
    backend.put(info.name, info.to_json())
    return info.name


def test_a_lock_of_another_host_counts_until_its_lease_runs_out(tmp_path: Path) -> None:
    backend = LocalDirBackend(tmp_path / "store")
    store = ChunkStore(backend, block_size=BLOCK, workers=1)
    now = time.time()
    _foreign_lock(backend, refreshed=now - 100)  # within its 180 s lease
    with pytest.raises(StoreLocked):
        store.gc_execute(store.gc_plan())
    assert store.break_dead_locks() == []
    backend.delete("locks/gc-" + "f" * 32)
    name = _foreign_lock(backend, refreshed=now - 180 - CLOCK_SKEW - 5)
    assert store.break_dead_locks() == [name]
    store.gc_execute(store.gc_plan())


def test_a_lock_written_before_leases_keeps_the_old_six_hours(tmp_path: Path) -> None:
    backend = LocalDirBackend(tmp_path / "store")
    body = {"kind": "gc", "created": time.time() - 7200, "refreshed": time.time() - 7200}
    backend.put("locks/gc-" + "0" * 32, json.dumps(body).encode())
    assert ChunkStore(backend, block_size=BLOCK).break_dead_locks() == []


def test_the_heartbeat_refreshes_a_busy_holder_and_a_lost_lock_stops_it(tmp_path: Path) -> None:
    backend = LocalDirBackend(tmp_path / "store")
    with HeldLock(backend, "backup", time.time, refresh_every=0.2) as lock:
        first = lock.info
        deadline = time.monotonic() + 5
        while lock.info.name == first.name and time.monotonic() < deadline:
            time.sleep(0.05)  # busy elsewhere: never calls maybe_refresh
        time.sleep(0.05)  # the old object is deleted just after the new one is written
        assert lock.info.refreshed > first.refreshed
        assert lock.info.created == first.created
        assert not backend.exists(first.name)
        backend.delete(lock.info.name)  # another process took the lease for run out
        time.sleep(0.6)
        with pytest.raises(LockLost):
            lock.maybe_refresh()
    assert list(backend.list("locks/")) == []
