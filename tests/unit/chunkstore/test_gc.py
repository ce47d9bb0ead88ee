"""Garbage collection: reclaims what no manifest uses, never what a running job needs."""

from __future__ import annotations

import random
import threading

import pytest

from opencbr.chunkstore import ChunkStore, MemoryBackend, PlanStale, Scope, StoreLocked
from opencbr.chunkstore.index import rebuild_index
from opencbr.chunkstore.locks import HeldLock

from .conftest import (
    BLOCK,
    FakeClock,
    FaultyBackend,
    image,
    make_store,
    reader,
    restored,
)


def unique_image(seed: int, blocks: int = 40) -> bytes:
    """Random blocks and holes only, so two images share no block."""
    rng = random.Random(seed)
    return b"".join(
        rng.randbytes(BLOCK) if rng.random() < 0.8 else bytes(BLOCK) for _ in range(blocks)
    )


def two_backups(store: ChunkStore, scope: Scope) -> tuple[str, str, bytes, bytes]:
    first, second = unique_image(31), unique_image(32)
    a = store.backup(scope, reader(first), len(first)).manifest_id
    b = store.backup(scope, reader(second), len(second)).manifest_id
    return a, b, first, second


def pack_names(store: ChunkStore) -> set[str]:
    return set(store.backend.list("packs/"))


def test_gc_deletes_unreferenced_data_and_keeps_live(store: ChunkStore, scope: Scope) -> None:
    a, b, _, second = two_backups(store, scope)
    shared = bytes(image(38, blocks=30))
    c = store.backup(scope, reader(shared), len(shared)).manifest_id
    d = store.backup(scope, reader(shared[: 20 * BLOCK]), 20 * BLOCK).manifest_id
    store.delete_manifest(c)  # d keeps c's packs partly live: they stay
    before = pack_names(store)
    assert store.gc_plan().dead_packs == ()  # everything is live
    store.delete_manifest(a)
    plan = store.gc_plan()
    assert plan.dead_packs
    assert plan.reclaimable_bytes > 0
    result = store.gc_execute(plan)
    assert set(result.deleted_packs) == set(plan.dead_packs)
    assert pack_names(store) < before
    assert restored(store, scope, b, len(second)) == second
    assert restored(store, scope, d, 20 * BLOCK) == shared[: 20 * BLOCK]
    report = make_store(store.backend).verify_store([scope])
    assert report.ok
    assert not report.unindexed_packs
    assert store.gc_plan().dead_packs == ()
    assert store.locks() == []


def test_gc_with_a_live_set_drops_old_manifests_only(
    store: ChunkStore, scope: Scope, clock: FakeClock
) -> None:
    a, b, _, second = two_backups(store, scope)
    assert store.gc_plan([b], grace=3600).dead_manifests == ()  # a is too young to drop
    clock.advance(7200)
    plan = store.gc_plan([b, "f" * 64], grace=3600)
    assert plan.dead_manifests == (a,)
    assert plan.missing_manifests == ("f" * 64,)
    result = store.gc_execute(plan)
    assert result.deleted_manifests == (a,)
    assert store.list_manifests() == [b]
    assert restored(store, scope, b, len(second)) == second
    assert store.verify_store([scope]).ok


def test_gc_keeps_indexed_packs_while_an_older_backup_runs(store: ChunkStore, scope: Scope) -> None:
    a, _, _, _ = two_backups(store, scope)
    store.delete_manifest(a)
    plan = store.gc_plan()
    with HeldLock(store.backend, "backup", store.clock):
        result = store.gc_execute(plan)
    assert result.deleted_packs == ()
    assert set(result.kept_packs) == set(plan.dead_packs)
    assert any("started before" in note for note in result.notes)
    assert store.gc_execute(store.gc_plan()).deleted_packs  # once it is gone, gc catches up


def test_backup_running_during_gc_can_reuse_dead_blocks(scope: Scope) -> None:
    clock = FakeClock()
    store = make_store(clock=clock)
    data = bytes(image(33, blocks=40))
    old = store.backup(scope, reader(data), len(data)).manifest_id
    store.delete_manifest(old)  # its blocks are now dead, but the same disk is backed up again
    plan = store.gc_plan()
    reading, release = threading.Event(), threading.Event()

    def slow_read(offset: int, length: int) -> bytes:
        reading.set()
        release.wait(10)
        return data[offset : offset + length]

    results: list[str] = []
    worker = threading.Thread(
        target=lambda: results.append(store.backup(scope, slow_read, len(data)).manifest_id)
    )
    worker.start()
    assert reading.wait(10)
    gc_result = store.gc_execute(plan)
    release.set()
    worker.join(10)
    assert gc_result.deleted_packs == ()
    assert restored(store, scope, results[0], len(data)) == data
    assert make_store(store.backend).verify_store([scope]).ok


def test_backup_after_a_gc_lock_does_not_reuse_condemned_blocks(
    store: ChunkStore, scope: Scope
) -> None:
    data = bytes(image(34, blocks=24))
    old = store.backup(scope, reader(data), len(data))
    store.delete_manifest(old.manifest_id)
    plan = store.gc_plan()
    with HeldLock(store.backend, "gc", store.clock, packs=plan.dead_packs):
        again = store.backup(scope, reader(data), len(data))
    assert again.new_blocks == old.new_blocks  # stored anew, not taken from condemned packs
    store.gc_execute(plan)  # deletes the old copies only
    assert restored(store, scope, again.manifest_id, len(data)) == data
    assert make_store(store.backend).verify_store([scope]).ok


def test_running_restore_keeps_its_blocks(store: ChunkStore, scope: Scope) -> None:
    a, _, first, _ = two_backups(store, scope)
    blocks = store.iter_blocks(scope, a)
    got = [next(blocks)]  # the restore is running: its lock names manifest a
    store.delete_manifest(a)
    result = store.gc_execute(store.gc_plan())
    assert result.deleted_packs == ()
    got.extend(blocks)
    bs = store.block_size
    assert b"".join(d or bytes(min(bs, len(first) - o)) for o, d in got) == first
    assert store.gc_execute(store.gc_plan()).deleted_packs  # lock released: now reclaimed


def test_restore_lock_keeps_a_dead_manifest(
    store: ChunkStore, scope: Scope, clock: FakeClock
) -> None:
    a, b, _, _ = two_backups(store, scope)
    clock.advance(7200)
    plan = store.gc_plan([b])
    with HeldLock(store.backend, "restore", store.clock, manifests=(a,)):
        result = store.gc_execute(plan)
    assert result.kept_manifests == (a,)
    assert a in store.list_manifests()


def test_orphan_packs_are_removed_after_the_grace_period(scope: Scope) -> None:
    clock = FakeClock()
    backend = FaultyBackend(MemoryBackend())
    store = make_store(backend, clock=clock)
    data = bytes(image(35, blocks=40))
    backend.fail_put = lambda name: name.startswith("index/")
    with pytest.raises(OSError):
        store.backup(scope, reader(data), len(data))
    backend.fail_put = lambda name: False
    orphans = pack_names(store)
    assert orphans
    assert store.gc_plan(grace=600).orphan_packs == ()  # could be a running backup's
    clock.advance(601)
    plan = store.gc_plan(grace=600)
    assert {f"packs/{p[:2]}/{p}" for p in plan.orphan_packs} == orphans
    result = store.gc_execute(plan)
    assert {f"packs/{p[:2]}/{p}" for p in result.deleted_packs} == orphans
    assert pack_names(store) == set()


def test_orphans_newer_than_a_running_backup_are_kept(scope: Scope) -> None:
    clock = FakeClock()
    backend = FaultyBackend(MemoryBackend())
    store = make_store(backend, clock=clock)
    running = HeldLock(store.backend, "backup", clock)  # started before the packs below
    clock.advance(120)
    backend.fail_put = lambda name: name.startswith("index/")
    data = bytes(image(36, blocks=16))
    with pytest.raises(OSError):
        store.backup(scope, reader(data), len(data))
    clock.advance(4000)
    plan = store.gc_plan(grace=600)
    assert plan.orphan_packs
    result = store.gc_execute(plan)
    assert result.deleted_packs == ()
    running.release()
    assert store.gc_execute(store.gc_plan(grace=600)).deleted_packs


def test_two_collections_do_not_run_at_once(store: ChunkStore, scope: Scope) -> None:
    two_backups(store, scope)
    with HeldLock(store.backend, "gc", store.clock), pytest.raises(StoreLocked):
        store.gc_execute(store.gc_plan())


def test_new_manifest_written_after_the_plan_is_kept(store: ChunkStore, scope: Scope) -> None:
    data = bytes(image(37, blocks=24))
    old = store.backup(scope, reader(data), len(data)).manifest_id
    store.delete_manifest(old)
    plan = store.gc_plan()
    new = store.backup(scope, reader(data), len(data))  # reuses the "dead" blocks
    assert new.new_blocks == 0
    result = store.gc_execute(plan)
    assert result.deleted_packs == ()
    assert restored(store, scope, new.manifest_id, len(data)) == data


def test_stale_locks_can_be_broken(store: ChunkStore, clock: FakeClock) -> None:
    HeldLock(store.backend, "backup", clock)
    clock.advance(100)
    fresh = HeldLock(store.backend, "restore", clock)
    clock.advance(100)
    broken = store.break_stale_locks(older_than=150)
    assert len(broken) == 1
    assert [lock.name for lock in store.locks()] == [fresh.info.name]


def test_lock_refresh_keeps_the_start_time(store: ChunkStore, clock: FakeClock) -> None:
    lock = HeldLock(store.backend, "backup", clock, refresh_every=0)
    clock.advance(50)
    lock.maybe_refresh()
    (info,) = store.locks()
    assert info.created == clock.now - 50
    assert info.refreshed == clock.now
    lock.release()
    assert store.locks() == []


def test_rebuild_index_from_packs(store: ChunkStore, scope: Scope) -> None:
    a, b, first, second = two_backups(store, scope)
    for name in list(store.backend.list("index/")):
        store.backend.delete(name)
    fresh = make_store(store.backend)
    assert fresh.rebuild_index() is not None
    assert restored(fresh, scope, a, len(first)) == first
    assert restored(fresh, scope, b, len(second)) == second
    assert len(list(store.backend.list("index/"))) == 1


def rewrite_index_on_first_read(backend: FaultyBackend) -> list[str]:
    """Another process's collection replaces every index file just as the first is read."""
    rewritten: list[str] = []

    def before_get(name: str) -> None:
        if name.startswith("index/") and not rewritten:
            rewritten.append(name)
            rebuild_index(backend.inner)

    backend.before_get = before_get
    return rewritten


def test_an_index_file_replaced_while_it_is_read_is_listed_again(scope: Scope) -> None:
    backend = FaultyBackend(MemoryBackend())
    writer = make_store(backend)
    _, b, _, second = two_backups(writer, scope)
    reader_store = make_store(backend)  # another process: it has not read the index yet
    rewritten = rewrite_index_on_first_read(backend)
    index = reader_store.index.refresh()
    assert rewritten
    assert index == make_store(backend.inner).index.refresh()
    assert restored(reader_store, scope, b, len(second)) == second


def test_a_plan_made_while_the_index_is_replaced_keeps_every_live_pack(scope: Scope) -> None:
    clock = FakeClock()
    backend = FaultyBackend(MemoryBackend())
    store = make_store(backend, clock=clock)
    a, b, first, second = two_backups(store, scope)
    clock.advance(7200)  # past the grace period: a pack in no index would be an orphan
    rewritten = rewrite_index_on_first_read(backend)
    plan = store.gc_plan(grace=600)
    assert rewritten
    assert (plan.dead_packs, plan.orphan_packs) == ((), ())
    store.gc_execute(plan)
    assert restored(store, scope, a, len(first)) == first
    assert restored(store, scope, b, len(second)) == second


def test_a_plan_made_before_another_collection_ran_is_refused_as_stale(
    store: ChunkStore, scope: Scope
) -> None:
    a, _, _, _ = two_backups(store, scope)
    store.delete_manifest(a)
    first, second = store.gc_plan(), store.gc_plan()
    assert store.gc_execute(first).deleted_packs  # rewrites the index
    with pytest.raises(PlanStale):
        store.gc_execute(second)


def test_a_collection_ticks_for_each_manifest_read_and_object_deleted(
    store: ChunkStore, scope: Scope
) -> None:
    a, _, _, _ = two_backups(store, scope)
    store.delete_manifest(a)
    ticks: list[str] = []
    plan = store.gc_plan(tick=lambda: ticks.append("plan"))
    assert ticks.count("plan") >= len(store.list_manifests())
    result = store.gc_execute(plan, tick=lambda: ticks.append("execute"))
    assert ticks.count("execute") == len(result.deleted_packs) + len(result.deleted_manifests)
    assert result.deleted_packs


def test_index_files_a_lagging_listing_still_names_are_skipped(scope: Scope) -> None:
    backend = FaultyBackend(MemoryBackend())
    writer = make_store(backend)
    _, b, _, second = two_backups(writer, scope)
    replaced = set(backend.inner.list("index/"))
    rebuild_index(backend.inner)  # another process's collection
    backend.ghosts = replaced  # deleted, still listed
    reader_store = make_store(backend)
    assert reader_store.index.refresh() == make_store(backend.inner).index.refresh()
    assert restored(reader_store, scope, b, len(second)) == second


def test_a_manifest_a_lagging_listing_still_names_is_neither_root_nor_dead(
    scope: Scope,
) -> None:
    clock = FakeClock()
    backend = FaultyBackend(MemoryBackend())
    store = make_store(backend, clock=clock)
    a, b, first, _ = two_backups(store, scope)
    store.delete_manifest(b)
    backend.ghosts = {f"manifests/{b}"}
    clock.advance(7200)
    plan = store.gc_plan({a}, grace=600)
    assert b not in plan.roots
    assert b not in plan.dead_manifests
    assert plan.dead_packs  # the blocks only b used
    store.gc_execute(plan)
    assert restored(store, scope, a, len(first)) == first
