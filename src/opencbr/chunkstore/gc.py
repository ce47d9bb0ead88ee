"""Garbage collection, plan then execute (the rules are in store.py's docstring).

Only whole packs are deleted: a pack goes when none of its blocks is live. Packs that are
partly live are counted in the plan (`partly_live_packs`) but not rewritten.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import ChunkStoreError, MissingObject, PlanStale, StoreLocked
from .formats import IndexFile
from .index import (
    INDEX_PREFIX,
    Location,
    list_packs,
    load_index_file,
    pack_object,
    read_pack_header,
    write_index_file,
)
from .locks import CLOCK_SKEW, HeldLock, LockInfo, live_locks
from .parts import StoreParts

__all__ = ["GcPlan", "GcResult", "execute_gc", "make_gc_plan"]


@dataclass(frozen=True)
class GcPlan:
    """What `gc_execute` will delete; computed by `gc_plan` without changing the store."""

    created: float
    grace: float
    roots: frozenset[str] = field(repr=False)  # manifests kept
    known_manifests: frozenset[str] = field(repr=False)  # every manifest seen
    dead_manifests: tuple[str, ...]
    missing_manifests: tuple[str, ...]  # named live by the caller but not stored
    index_files: tuple[str, ...] = field(repr=False)
    dead_packs: tuple[str, ...]
    orphan_packs: tuple[str, ...]  # in no index file and older than the grace period
    partly_live_packs: int
    live_blocks: int
    dead_blocks: int
    reclaimable_bytes: int


@dataclass(frozen=True)
class GcResult:
    deleted_manifests: tuple[str, ...]
    deleted_packs: tuple[str, ...]
    deleted_bytes: int
    kept_packs: tuple[str, ...]  # planned but kept for a running backup or restore
    kept_manifests: tuple[str, ...]
    index_files_written: int
    notes: tuple[str, ...]


Tick = Callable[[], None]
"""Called after each object read or deleted: a long collection's heartbeat."""


def _no_tick() -> None:
    return None


def _pack_contents(store: StoreParts, files: Iterable[str]) -> dict[str, dict[bytes, int]]:
    """pack -> {block id: blob length}, from index files."""
    packs: dict[str, dict[bytes, int]] = {}
    for name in files:
        index: IndexFile = load_index_file(store.backend, name)
        for block_id, number, _offset, length in index.entries:
            packs.setdefault(index.packs[number], {})[block_id] = length
    return packs


_PLAN_ATTEMPTS = 3
_PLAN_RETRY_SECONDS = 0.5


def make_gc_plan(
    store: StoreParts, live: frozenset[str] | None, grace: float, tick: Tick | None = None
) -> GcPlan:
    """The plan, made again from fresh listings, a little later each time, when an index file
    or pack it lists is gone when read: another collection rewrote the index meanwhile, and an
    object store's listing may lag behind. Such a file is never skipped: the packs it lists
    would be taken for orphans. (A listed manifest that is gone was deleted: not a root.)"""
    for attempt in range(1, _PLAN_ATTEMPTS + 1):
        try:
            return _plan_once(store, live, grace, tick or _no_tick)
        except MissingObject:
            if attempt == _PLAN_ATTEMPTS:
                raise
            time.sleep(_PLAN_RETRY_SECONDS * attempt)
    raise AssertionError("unreachable")


def _existing_roots(store: StoreParts, names: Iterable[str], tick: Tick) -> dict[str, set[bytes]]:
    """The block ids each listed manifest needs, without the manifests deleted since they were
    listed (by another collection): those are no longer roots."""
    roots = {}
    for name in names:
        try:
            roots[name] = store.load_manifest(name).stored_ids()
        except MissingObject:
            continue
        tick()
    return roots


def _plan_once(store: StoreParts, live: frozenset[str] | None, grace: float, tick: Tick) -> GcPlan:
    now = store.clock()
    known = frozenset(store.list_manifests())
    roots, dead = set(known), []
    if live is not None:
        for manifest_id in sorted(known - live):
            try:
                young = store.load_manifest(manifest_id).created_ms / 1000 > now - grace
            except MissingObject:  # deleted since it was listed
                roots.discard(manifest_id)
                continue
            tick()
            if young:
                continue  # too young: its backup may not be recorded by the caller yet
            roots.discard(manifest_id)
            dead.append(manifest_id)
    live_ids: set[bytes] = set().union(*_existing_roots(store, sorted(roots), tick).values())
    files = tuple(sorted(store.backend.list(INDEX_PREFIX)))
    packs = _pack_contents(store, files)
    dead_packs, partly, dead_blocks, reclaim = [], 0, 0, 0
    for pack, blobs in sorted(packs.items()):
        alive = sum(1 for b in blobs if b in live_ids)
        if alive == 0:
            dead_packs.append(pack)
            dead_blocks += len(blobs)
            reclaim += sum(blobs.values())
        elif alive < len(blobs):
            partly += 1
            dead_blocks += len(blobs) - alive
    orphans = []
    for pack in sorted(list_packs(store.backend) - packs.keys()):
        header = read_pack_header(store.backend, pack)
        if header.created_ms / 1000 < now - grace:
            orphans.append(pack)
            reclaim += sum(e.length for e in header.entries)
    return GcPlan(
        created=now,
        grace=grace,
        roots=frozenset(roots),
        known_manifests=known,
        dead_manifests=tuple(dead),
        missing_manifests=tuple(sorted((live or set()) - known)),
        index_files=files,
        dead_packs=tuple(dead_packs),
        orphan_packs=tuple(orphans),
        partly_live_packs=partly,
        live_blocks=len(live_ids),
        dead_blocks=dead_blocks,
        reclaimable_bytes=reclaim,
    )


def _take_gc_lock(store: StoreParts, plan: GcPlan) -> HeldLock:
    others = [lock for lock in live_locks(store.backend, store.clock()) if lock.kind == "gc"]
    if others:
        raise StoreLocked(f"garbage collection {others[0].name} is running")
    lock = HeldLock(
        store.backend,
        "gc",
        store.clock,
        packs=plan.dead_packs + plan.orphan_packs,
        refresh_every=store.lock_refresh,
    )
    first = next(lk for lk in live_locks(store.backend, store.clock()) if lk.kind == "gc")
    if first.name != lock.info.name:
        lock.release()
        raise StoreLocked(f"garbage collection {first.name} is running")
    return lock


class _Execution:
    """State of one `gc_execute`: what must be kept, decided from locks and late writes."""

    def __init__(self, store: StoreParts, plan: GcPlan, lock: HeldLock) -> None:
        self.store, self.plan, self.me = store, plan, lock.info
        try:
            self.packs = _pack_contents(store, plan.index_files)
        except MissingObject:
            raise PlanStale("the plan is stale (its index files are gone); plan again") from None
        self.held_ids: set[bytes] = set()
        self.held_manifests: set[str] = set()
        self.keep_all_indexed = False
        self.orphan_cutoff = plan.created - plan.grace
        self.orphan_sizes: dict[str, int] = {}
        self.notes: list[str] = []

    def hold(self, manifest_id: str, why: str) -> None:
        self.held_manifests.add(manifest_id)
        try:
            ids = self.store.load_manifest(manifest_id).stored_ids()
        except ChunkStoreError:  # MissingObject, CorruptObject
            self.keep_all_indexed = True
            self.notes.append(f"{why} holds unreadable manifest {manifest_id}: kept every pack")
            return
        self.held_ids |= ids

    def read_locks(self) -> None:
        for lock in live_locks(self.store.backend, self.store.clock()):
            if lock.kind == "gc":
                continue
            for manifest_id in lock.manifests:
                self.hold(manifest_id, f"{lock.kind} {lock.name}")
            if lock.kind == "backup":
                self._backup(lock)

    def _backup(self, lock: LockInfo) -> None:
        self.orphan_cutoff = min(self.orphan_cutoff, lock.created - CLOCK_SKEW)
        if lock.created < self.me.created + CLOCK_SKEW:
            self.keep_all_indexed = True
            self.notes.append(
                f"backup {lock.name} started before this collection: indexed packs kept"
            )

    def read_late_writes(self) -> set[str]:
        """Hold manifests written since the plan; returns packs indexed since the plan."""
        for manifest_id in sorted(set(self.store.list_manifests()) - self.plan.known_manifests):
            self.hold(manifest_id, "new manifest")
        late_files = set(self.store.backend.list(INDEX_PREFIX)) - set(self.plan.index_files)
        return set(_pack_contents(self.store, late_files))

    def packs_to_delete(self, late_packs: set[str]) -> tuple[list[str], list[str]]:
        delete, kept = [], []
        for pack in self.plan.dead_packs:
            if self.keep_all_indexed or self.held_ids.intersection(self.packs.get(pack, ())):
                kept.append(pack)
            else:
                delete.append(pack)
        for pack in self.plan.orphan_packs:
            if pack in late_packs:
                continue
            header = read_pack_header(self.store.backend, pack)
            if header.created_ms / 1000 < self.orphan_cutoff:
                delete.append(pack)
                self.orphan_sizes[pack] = sum(e.length for e in header.entries)
            else:
                kept.append(pack)
        return delete, kept

    def rewrite_index(self, deleted: set[str]) -> int:
        """Write the plan's index entries minus deleted packs; delete the old files."""
        if not (deleted & self.packs.keys()) and len(self.plan.index_files) <= 1:
            return 0
        locations = []
        for name in self.plan.index_files:
            index = load_index_file(self.store.backend, name)
            for block_id, number, offset, length in index.entries:
                pack = index.packs[number]
                if pack not in deleted:
                    locations.append((block_id, Location(pack, offset, length)))
        new = write_index_file(self.store.backend, locations)[0] if locations else None
        for name in self.plan.index_files:
            if name != new:  # same entries, same bytes, same name: it is the new file
                self.store.backend.delete(name)
        return int(new is not None)


def execute_gc(store: StoreParts, plan: GcPlan, tick: Tick | None = None) -> GcResult:
    tick = tick or _no_tick
    with _take_gc_lock(store, plan) as lock:
        run = _Execution(store, plan, lock)
        run.read_locks()
        late_packs = run.read_late_writes()
        kept_manifests = [m for m in plan.dead_manifests if m in run.held_manifests]
        dropped = [m for m in plan.dead_manifests if m not in run.held_manifests]
        # The lease is checked before every destructive step, not after: a collection whose
        # lock was taken over (its lease ran out) stops before it deletes anything more.
        for manifest_id in dropped:
            lock.maybe_refresh()
            store.delete_manifest(manifest_id)
            tick()
        delete, kept = run.packs_to_delete(late_packs)
        lock.maybe_refresh()
        written = run.rewrite_index(set(delete))
        freed = 0
        for pack in delete:
            blobs = run.packs.get(pack)
            freed += sum(blobs.values()) if blobs else run.orphan_sizes.get(pack, 0)
            lock.maybe_refresh()
            store.backend.delete(pack_object(pack))
            tick()
    return GcResult(
        deleted_manifests=tuple(dropped),
        deleted_packs=tuple(delete),
        deleted_bytes=freed,
        kept_packs=tuple(kept),
        kept_manifests=tuple(kept_manifests),
        index_files_written=written,
        notes=tuple(run.notes),
    )
