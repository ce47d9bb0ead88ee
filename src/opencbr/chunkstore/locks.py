"""Lock objects: how running backups, restores and garbage collections see each other.

A lock is an immutable JSON object ``locks/<kind>-<random>``. It records its start time
(``created``, kept across refreshes), the time of its last refresh, its holder (host name,
host id, pid and the process's start time) and what it holds: a restore the manifest it
reads, a backup its parent manifest, a garbage collection the packs it is about to delete.

A lock is a lease. While it is held a heartbeat thread rewrites it every `refresh_every`
seconds (a new object, then the old one deleted), whatever the holder is busy with; the lock
states its lease (`LEASE_FACTOR` refresh intervals). Its holder is dead, and the lock is
removed by whoever reads it (`live_locks`), when

- the lock was written on this host (same host id: same kernel boot and process namespace)
  and its pid is gone or is now another process (the start time differs): at once; or
- its lease has run out: not refreshed for its lease plus `CLOCK_SKEW` seconds. This is the
  only rule across hosts, and on an object store (S3), where no process can be asked.

A holder whose refresh finds its previous lock object gone (another process found the lease
run out: the holder was frozen or cut off) has lost the lock; its next `maybe_refresh` raises
`LockLost`, so the work the lock guarded stops instead of going on unprotected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from types import TracebackType

from .backend import Backend
from .errors import ChunkStoreError, LockLost, MissingObject

__all__ = [
    "CLOCK_SKEW",
    "LEASE_FACTOR",
    "LOCK_PREFIX",
    "HeldLock",
    "LockInfo",
    "holder_is_dead",
    "live_locks",
    "read_locks",
]

log = logging.getLogger(__name__)

LOCK_PREFIX = "locks/"
KINDS = ("backup", "restore", "gc")
CLOCK_SKEW = 60.0  # seconds of disagreement between hosts' clocks that locks tolerate
LEASE_FACTOR = 3  # a lease lasts this many refresh intervals: two refreshes may fail
LEGACY_LEASE = 6 * 3600.0  # locks written before leases were recorded


@dataclass(frozen=True)
class LockInfo:
    """One lock object as stored."""

    name: str
    kind: str
    created: float
    refreshed: float
    host: str = ""
    pid: int = 0
    scope: str = ""
    manifests: tuple[str, ...] = ()
    packs: tuple[str, ...] = field(default=(), repr=False)
    lease: float = 0.0  # seconds after `refreshed` the holder counts as alive; 0: LEGACY_LEASE
    host_id: str = ""  # `_host_id()` of the holder's host; "" where it cannot be told
    started: int = 0  # the holder process's start time (clock ticks since boot); 0: unknown

    def to_json(self) -> bytes:
        body = {
            "kind": self.kind,
            "created": self.created,
            "refreshed": self.refreshed,
            "host": self.host,
            "host_id": self.host_id,
            "pid": self.pid,
            "started": self.started,
            "lease": self.lease,
            "scope": self.scope,
            "manifests": list(self.manifests),
            "packs": list(self.packs),
        }
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_json(cls, name: str, data: bytes) -> LockInfo:
        try:
            body = json.loads(data)
            return cls(
                name=name,
                kind=str(body["kind"]),
                created=float(body["created"]),
                refreshed=float(body["refreshed"]),
                host=str(body.get("host", "")),
                pid=int(body.get("pid", 0)),
                scope=str(body.get("scope", "")),
                manifests=tuple(body.get("manifests", ())),
                packs=tuple(body.get("packs", ())),
                lease=float(body.get("lease", 0.0)),
                host_id=str(body.get("host_id", "")),
                started=int(body.get("started", 0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ChunkStoreError(f"lock {name} is unreadable: {exc}") from None


@cache
def _host_id() -> str:
    """Names this kernel boot and process namespace: only there does a pid mean the same
    process. Two containers with one host name differ here; "" without /proc."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            boot_id = boot.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return hashlib.sha256(f"{boot_id}/{namespace}".encode()).hexdigest()[:32]


def _process_started(pid: int) -> int | None:
    """The start time of process `pid` (clock ticks since boot), None when there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])  # field 22 of proc(5); the split starts at field 3


def holder_is_dead(lock: LockInfo, now: float) -> str | None:
    """Why the lock's holder is dead (see the module rules), or None while it may live."""
    if lock.host_id and lock.host_id == _host_id() and lock.pid > 0:
        started = _process_started(lock.pid)
        if started is None or (lock.started and started != lock.started):
            return f"its process {lock.pid} on {lock.host} is gone"
        return None  # the holder runs here: a late heartbeat is not a death
    lease = lock.lease or LEGACY_LEASE
    if now - lock.refreshed > lease + CLOCK_SKEW:
        return f"not refreshed for {now - lock.refreshed:.0f} s (lease {lease:.0f} s)"
    return None


def read_locks(backend: Backend) -> list[LockInfo]:
    """Every lock in the store, live or not (locks deleted while listing are skipped)."""
    locks = []
    for name in backend.list(LOCK_PREFIX):
        try:
            locks.append(LockInfo.from_json(name, backend.get(name)))
        except MissingObject:
            continue
    return sorted(locks, key=lambda lock: (lock.created, lock.name))


def live_locks(backend: Backend, now: float, removed: list[str] | None = None) -> list[LockInfo]:
    """The locks whose holders may be alive; the others are deleted on the way (their names
    appended to `removed`)."""
    live = []
    for lock in read_locks(backend):
        reason = holder_is_dead(lock, now)
        if reason is None:
            live.append(lock)
            continue
        log.warning("removing lock %s of a dead %s: %s", lock.name, lock.kind, reason)
        backend.delete(lock.name)
        if removed is not None:
            removed.append(lock.name)
    return live


class HeldLock:
    """A lock this process holds; a context manager that removes it on exit.

    `refresh_every` > 0 starts the heartbeat thread; 0 leaves refreshing to `maybe_refresh`
    (tests that drive the clock themselves)."""

    def __init__(
        self,
        backend: Backend,
        kind: str,
        clock: Callable[[], float],
        *,
        scope: str = "",
        manifests: tuple[str, ...] = (),
        packs: tuple[str, ...] = (),
        refresh_every: float = 60.0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown lock kind {kind!r}")
        self._backend = backend
        self._clock = clock
        self._refresh_every = refresh_every
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._lost: str | None = None
        now = clock()
        pid = os.getpid()
        self.info = LockInfo(
            name=_new_name(kind),
            kind=kind,
            created=now,
            refreshed=now,
            host=os.uname().nodename,
            pid=pid,
            scope=scope,
            manifests=manifests,
            packs=packs,
            lease=LEASE_FACTOR * refresh_every if refresh_every > 0 else LEGACY_LEASE,
            host_id=_host_id(),
            started=_process_started(pid) or 0,
        )
        backend.put(self.info.name, self.info.to_json())
        self._last = time.monotonic()
        self._beat: threading.Thread | None = None
        if refresh_every > 0:
            self._beat = threading.Thread(target=self._heartbeat, name=f"lock-{kind}", daemon=True)
            self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self._refresh_every):
            try:
                self._refresh()
            except LockLost:
                return
            except Exception:  # a failed write: the next beat tries again within the lease
                log.exception("refreshing lock %s failed", self.info.name)

    def _refresh(self) -> None:
        with self._mutex:
            if self._stop.is_set():
                return
            if self._lost:
                raise LockLost(self._lost)
            old = self.info
            if not self._backend.exists(old.name):
                self._lost = f"lock {old.name} was removed while held: its lease ran out"
                raise LockLost(self._lost)
            new = replace(old, name=_new_name(old.kind), refreshed=self._clock())
            self._backend.put(new.name, new.to_json())
            self.info = new  # from here `release` removes the new object
            self._backend.delete(old.name)
            self._last = time.monotonic()

    def maybe_refresh(self) -> None:
        """Raise `LockLost` if the lock was lost; rewrite it when older than the refresh
        interval (cheap to call often: the heartbeat usually has)."""
        if self._lost:
            raise LockLost(self._lost)
        if time.monotonic() - self._last >= self._refresh_every:
            self._refresh()

    def release(self) -> None:
        with self._mutex:
            self._stop.set()
            self._backend.delete(self.info.name)
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join()

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _new_name(kind: str) -> str:
    return f"{LOCK_PREFIX}{kind}-{os.urandom(16).hex()}"
