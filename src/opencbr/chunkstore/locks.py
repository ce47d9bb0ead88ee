"""Lock objects: how running backups, restores and garbage collections see each other.

A lock is an immutable JSON object ``locks/<kind>-<random>``. It records its start time
(``created``, kept across refreshes), the time of its last refresh, and what it holds: a
restore the manifest it reads, a backup its parent manifest, a garbage collection the packs
it is about to delete. A holder refreshes its lock by writing a new object and deleting the
old one, so `break_stale_locks` can tell a crashed holder from a slow one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from .backend import Backend
from .errors import ChunkStoreError, MissingObject

__all__ = ["LOCK_PREFIX", "HeldLock", "LockInfo", "read_locks"]

LOCK_PREFIX = "locks/"
KINDS = ("backup", "restore", "gc")


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

    def to_json(self) -> bytes:
        body = {
            "kind": self.kind,
            "created": self.created,
            "refreshed": self.refreshed,
            "host": self.host,
            "pid": self.pid,
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
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ChunkStoreError(f"lock {name} is unreadable: {exc}") from None


def read_locks(backend: Backend) -> list[LockInfo]:
    """Every lock in the store (locks deleted while listing are skipped)."""
    locks = []
    for name in backend.list(LOCK_PREFIX):
        try:
            locks.append(LockInfo.from_json(name, backend.get(name)))
        except MissingObject:
            continue
    return sorted(locks, key=lambda lock: (lock.created, lock.name))


class HeldLock:
    """A lock this process holds; a context manager that removes it on exit."""

    def __init__(
        self,
        backend: Backend,
        kind: str,
        clock: Callable[[], float],
        *,
        scope: str = "",
        manifests: tuple[str, ...] = (),
        packs: tuple[str, ...] = (),
        refresh_every: float = 300.0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown lock kind {kind!r}")
        self._backend = backend
        self._clock = clock
        self._refresh_every = refresh_every
        now = clock()
        self.info = LockInfo(
            name=f"{LOCK_PREFIX}{kind}-{os.urandom(16).hex()}",
            kind=kind,
            created=now,
            refreshed=now,
            host=os.uname().nodename,
            pid=os.getpid(),
            scope=scope,
            manifests=manifests,
            packs=packs,
        )
        backend.put(self.info.name, self.info.to_json())
        self._last = time.monotonic()

    def maybe_refresh(self) -> None:
        """Rewrite the lock when it is older than the refresh interval (cheap to call often)."""
        if time.monotonic() - self._last < self._refresh_every:
            return
        old = self.info
        self.info = LockInfo(
            name=f"{LOCK_PREFIX}{old.kind}-{os.urandom(16).hex()}",
            kind=old.kind,
            created=old.created,
            refreshed=self._clock(),
            host=old.host,
            pid=old.pid,
            scope=old.scope,
            manifests=old.manifests,
            packs=old.packs,
        )
        self._backend.put(self.info.name, self.info.to_json())
        self._backend.delete(old.name)
        self._last = time.monotonic()

    def release(self) -> None:
        self._backend.delete(self.info.name)

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
