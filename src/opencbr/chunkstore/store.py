"""The chunk store: deduplicated, compressed, optionally encrypted backups of disk images.

Storage rules
=============

Objects (immutable but the config and locks; see formats.py and codec.py for the layouts)::

    config                       format version of the store (JSON; raised, never lowered:
                                 see _STORE_VERSION)
    packs/<2 hex>/<64 hex>       packs: a table of (block id, offset, length), then the blobs
    index/<64 hex>               index files: block id -> (pack, offset, length)
    manifests/<64 hex>           one backup of one disk: size, block size, ordered block ids
    locks/<kind>-<32 hex>        running backups, restores and garbage collections
    catalogue/<kind>/<name>      the caller's catalogue: sealed blobs the store never opens
                                 (catalogue.py), named and rewritten by the caller

Packs, index files and manifests are named by the BLAKE3 digest of their bytes, so anyone can
check any of them without keys, and writing one twice writes the same bytes.

Blocks. A disk is cut into fixed, aligned blocks of `DEFAULT_BLOCK_SIZE` (64 KiB). Blocks of
zeros are holes: no blob, a bit in the manifest. A block that is a copy, shifted by a multiple
of 4 KiB, of two neighbouring blocks of the same disk kept as blobs is a shift: no blob, an
entry in the manifest naming those two (shifts.py). A block id is the keyed BLAKE3 of the
block under the scope's id key, so blocks deduplicate only inside one scope (one encryption
key). Each blob is zstd-compressed unless that saves under 3 %, and AES-256-GCM-encrypted
when the scope has a data key, with its id in the associated data (codec.py).

Why 64 KiB: the store must grow by at most 5x the bytes a scattered 1 % change writes (writes
of 4-64 KiB). Each changed write costs at least one whole stored block, so growth falls with
the block size, while the per-block costs (hash and codec calls, 40 + 44 + 32 bytes of pack
table, index and manifest per block, index memory) grow as it falls. 128 KiB sits close to
the 5x limit (and past it for smaller scattered writes); 32 KiB doubles the metadata and the
per-block work for a gain the target does not need. 64 KiB meets the target with margin
(bench/README.md, "Figures behind the code").

Why zstd level 1: compression is most of a full backup's CPU (about half of each worker's
time at level 3). Level 1 compresses text-like blocks much faster than level 3 to nearly the
same size (random blocks are stored raw either way), so backups are faster for a store about
1 % larger (bench/README.md, "Figures behind the code"). The level is a `ChunkStore` argument;
blobs of any level read back alike.

Write order: packs -> index file -> manifest. A backup first writes all its packs, then one
index file listing the blobs in them, then its manifest. So every block a manifest names is in
an index file whose packs exist, and a crash leaves at worst packs no index lists (orphans) or
an index file no manifest uses; neither is visible to readers, and garbage collection removes
them.

Delete order: manifest -> index -> packs. Deleting a backup deletes its manifest only.
Garbage collection then writes a new index file without the entries of the packs it will
delete, deletes the old index files, and deletes the packs last. A crash in between leaves
index entries for existing packs or unindexed packs, never an entry for a missing pack.

Catalogue. So that a store can be read again when everything its caller knew about it is
lost, the caller keeps its own records in it: for the cbr slice, its keys (sealed by the
server root key and by an offline recovery key), each scope's key, each tenant's identities
and KMS key material, and one record per backup naming its manifests. The store frames them
with a checksum (catalogue.py) and otherwise treats them as opaque; the caller encrypts and
authenticates them. Their rules, which the caller keeps:

- A backup's record is written after its manifests (packs -> index -> manifests -> record)
  and rewritten when what it says changes; so every record names manifests that were
  written, unless a crash or a collection removed them since.
- A record whose manifests are missing is skipped by a recovery (a crashed or collected
  backup), never taken for a backup without data.
- Deleting a backup deletes its record before its manifests (record -> manifest -> index ->
  packs): a crash in between leaves a manifest no record names, which collection removes.
- Catalogue objects are not roots of garbage collection here: the caller names the live
  manifests (the cbr slice names those of its records too, so a service started on an empty
  database collects nothing of the backups its catalogue knows).
- Catalogue objects are mutable and not content-named; a put replaces the whole object
  atomically. `verify_store` checks every catalogue object's frame.

Locks and garbage collection. A backup writes ``locks/backup-*`` (start time, parent manifest)
before it reads the index; a restore writes ``locks/restore-*`` (its manifest) before it reads
the manifest; both are deleted when done. Every lock is a lease kept by a heartbeat thread
(rewritten every `lock_refresh` seconds, a minute by default; the lease is three of them) and
names its holder's host and pid. A lock whose holder is dead counts for nothing and is removed
by the next reader (locks.py): at once when the holder ran on the reader's host and its process
is gone (a kill -9), else when its lease has run out (another host, an object store). A holder
that finds its lock removed stops with `LockLost`.
Garbage collection is plan-then-execute: `gc_plan` computes, without changing anything, the
manifests to drop (stored but not in the caller's live set and older than the grace period),
the packs none of whose blocks a live manifest names, and the unindexed packs older than the
grace period. `gc_execute` then

1. writes ``locks/gc-*`` listing the packs it means to delete (another live collection makes
   it stop with `StoreLocked`; a dead one's lock is removed); backups that start later do not
   reuse blocks in them;
2. reads the live locks: while a backup that started before its lock runs (it may reuse any indexed
   block), it deletes no indexed pack; it never deletes an unindexed pack newer than the oldest
   running backup's start; it keeps every pack holding a block of a manifest a running restore
   or backup holds, and the manifest itself;
3. keeps the packs of manifests and index files written since the plan;
4. deletes dropped manifests, rewrites the index, deletes packs, and removes its lock.

The roots of collection are the manifests the caller names live (for the cbr slice: every
backup that exists, including those shared with other projects, which reference the same
manifest) plus every manifest younger than the grace period, so a backup that finished but
whose caller has not yet recorded it is never collected. A crashed holder's lock pins nothing
once its death is known (see the lock rules above): collection never stalls behind it.

Reads. Every block read is decrypted (authenticated), decompressed and hashed; its keyed hash
must equal its id, or the read fails with `CorruptBlock` naming the block, the manifest and
the pack. A manifest is checked against the scope first (`WrongKey` for another scope's keys).
`verify` reads every block of one manifest; `verify_store` checks every object and says which
manifests need a damaged or missing pack (`VerifyReport.damaged`); without reading the data
it still reads each pack's table and its last byte, so a missing or truncated pack is found.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .backend import PRIVATE_FILE, Backend
from .backup import BackupResult, ReadAt, as_read_at, run_backup
from .catalogue import Catalogue
from .codec import DEFAULT_ZSTD_LEVEL, BlockCodec, Scope, deterministic_nonces
from .errors import ChunkStoreError, CorruptObject, MissingObject
from .formats import Manifest, decode_manifest, object_digest
from .gc import GcPlan, GcResult, execute_gc, make_gc_plan
from .index import BlockIndex, Location, rebuild_index
from .locks import HeldLock, LockInfo, live_locks, read_locks
from .restore import RestoreResult, restore_blocks
from .shifts import SHIFT_UNIT
from .stream import stream_blocks
from .verify import VerifyReport, verify_manifest, verify_store
from .writeback import early_write_back

__all__ = ["DEFAULT_BLOCK_SIZE", "DEFAULT_PACK_SIZE", "MANIFEST_PREFIX", "ChunkStore"]

DEFAULT_BLOCK_SIZE = 64 * 1024
DEFAULT_PACK_SIZE = 16 * 1024 * 1024
_IOV_MAX = os.sysconf("SC_IOV_MAX")  # buffers one pwritev takes
MANIFEST_PREFIX = "manifests/"
_CONFIG = "config"
_STORE_VERSION = 2
"""The newest format a store may hold. A store is created at version 1 and raised to 2 before
the first manifest with shifts is written, so software that reads only version 1 refuses to
open it instead of taking those manifests for damaged ones."""


class ChunkStore:
    """A chunk store over one backend. Thread-safe; all state lives in the backend.

    `block_size` applies to new backups (a manifest records its own); it must be a power of two
    of at least 512 bytes (tests use small ones). `shift_unit` is the alignment of the copies a
    backup looks for to store as shifts of other blocks (shifts.py); 0 turns that off.
    `deterministic` derives AES-GCM nonces from block ids so that the same input gives the
    same bytes (golden files only; see codec.py). `clock` gives the time written into objects
    and locks.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        pack_size: int = DEFAULT_PACK_SIZE,
        zstd_level: int = DEFAULT_ZSTD_LEVEL,
        workers: int | None = None,
        batch_bytes: int = 4 * 1024 * 1024,
        window: int | None = None,
        clock: Callable[[], float] = time.time,
        deterministic: bool = False,
        lock_refresh: float = 60.0,
        shift_unit: int = SHIFT_UNIT,
    ) -> None:
        if block_size < 512 or block_size & (block_size - 1) or block_size > 1 << 24:
            raise ValueError("block_size must be a power of two between 512 B and 16 MiB")
        if shift_unit and (shift_unit < 16 or shift_unit & (shift_unit - 1)):
            raise ValueError("shift_unit must be 0 or a power of two of at least 16 bytes")
        self.backend = backend
        self.block_size = block_size
        self.pack_size = pack_size
        self.zstd_level = zstd_level
        self.workers = workers or os.cpu_count() or 2
        self.batch_bytes = batch_bytes
        self.window = window or 2 * self.workers + 2
        self.clock = clock
        self.deterministic = deterministic
        self.lock_refresh = lock_refresh
        self.shift_unit = shift_unit
        self.index = BlockIndex(backend)
        self.catalogue = Catalogue(backend)
        self.version = 1
        self._check_config()

    def _check_config(self) -> None:
        version = self._read_version()
        if version is None:
            self._write_version(1)
        elif not isinstance(version, int) or not 1 <= version <= _STORE_VERSION:
            raise ChunkStoreError(f"store format version {version} is not supported")
        else:
            self.version = version

    def _read_version(self) -> object:
        try:
            config = json.loads(self.backend.get(_CONFIG))
        except MissingObject:
            return None
        except ValueError:
            raise CorruptObject(_CONFIG, "not JSON") from None
        if not isinstance(config, dict):
            raise CorruptObject(_CONFIG, "not a JSON object")
        return config.get("version")

    def _write_version(self, version: int) -> None:
        self.backend.put(_CONFIG, json.dumps({"version": version}).encode())
        self.version = version

    def answers(self) -> bool:
        """Whether the backend answers and still holds this store (its config object): a
        readiness check, one small request."""
        return self.backend.exists(_CONFIG)

    def require_version(self, version: int) -> None:
        """Raise the store's format version to at least `version`; called before writing the
        first object of that version."""
        if self.version >= version:
            return
        current = self._read_version()  # another process may have raised it already
        if isinstance(current, int) and current >= version:
            self.version = current
        else:
            self._write_version(version)

    def codec(self, scope: Scope) -> BlockCodec:
        nonces = deterministic_nonces(scope) if self.deterministic else None
        return BlockCodec(scope, level=self.zstd_level, nonce_source=nonces)

    def _lock(self, kind: str, scope: str, manifests: tuple[str, ...]) -> HeldLock:
        return HeldLock(
            self.backend,
            kind,
            self.clock,
            scope=scope,
            manifests=manifests,
            refresh_every=self.lock_refresh,
        )

    # ---------------------------------------------------------------------------- backup

    def backup(
        self,
        scope: Scope,
        reader: ReadAt | Any,
        size: int,
        *,
        parent: str | None = None,
        changed_extents: Sequence[tuple[int, int]] | None = None,
        progress: Callable[[int, int], None] | None = None,
        data_extents: Sequence[tuple[int, int]] | None = None,
    ) -> BackupResult:
        """Back up a disk of `size` bytes read through `reader` (``read_at(offset, length)``
        or a file object); returns the new manifest's id and what was stored.

        With `parent` and `changed_extents` ((offset, length) pairs that may have changed since
        the parent) only blocks touching an extent are read; the rest come from the parent.
        With `parent` alone everything is read and only blocks the store lacks are stored.
        `data_extents`, a superset of the ranges that may hold non-zero data (the allocated
        ranges of a sparse image), lets a read of everything skip the rest: it is recorded as
        holes without being read.
        """
        if size < 0:
            raise ValueError("size must not be negative")
        read_at = as_read_at(reader)
        with self._lock("backup", scope.name, (parent,) if parent else ()) as lock:
            gc_locks = [h for h in live_locks(self.backend, self.clock()) if h.kind == "gc"]
            condemned = frozenset(pack for held in gc_locks for pack in held.packs)
            index = self.index.refresh()
            base = self.load_manifest(parent) if parent else None
            if base is not None:
                base.check_scope(scope)
            return run_backup(
                self,
                self.codec(scope),
                read_at,
                size,
                base,
                changed_extents,
                progress,
                lock.maybe_refresh,
                index,
                condemned,
                data_extents,
            )

    # --------------------------------------------------------------------------- reading

    @contextmanager
    def _reading(
        self, scope: Scope, manifest_id: str
    ) -> Iterator[tuple[Manifest, dict[bytes, Location], HeldLock]]:
        with self._lock("restore", scope.name, (manifest_id,)) as lock:
            manifest = self.load_manifest(manifest_id)
            manifest.check_scope(scope)
            yield manifest, self.index.refresh(), lock

    def restore(
        self,
        scope: Scope,
        manifest_id: str,
        path: str | os.PathLike[str],
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> RestoreResult:
        """Restore into a new sparse file at `path` (holes stay holes).

        The data goes to ``<path>.partial``, which is fsynced and renamed to `path` only when
        every block was verified and written; on any error it is removed, so a file at `path`
        is always a complete restore.
        """
        started = time.monotonic()
        target = os.fspath(path)
        if os.path.exists(target):
            raise FileExistsError(target)
        partial = target + ".partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
        try:
            with (
                self._reading(scope, manifest_id) as (manifest, index, lock),
                early_write_back(fd, drop_cache=True) as write_back,
            ):
                os.ftruncate(fd, manifest.disk_size)

                def write_run(offset: int, parts: Sequence[bytes]) -> None:
                    write_back.wrote(_pwritev_all(fd, parts, offset))

                written = restore_blocks(
                    self,
                    self.codec(scope),
                    manifest,
                    index,
                    write_run,
                    threadsafe=True,
                    zero_holes=False,
                    progress=progress,
                    tick=lock.maybe_refresh,
                )
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(partial)
            raise
        os.close(fd)
        os.replace(partial, target)
        holes = sum(1 for b in manifest.blocks if b is None)
        return RestoreResult(
            manifest_id,
            manifest.disk_size,
            written,
            len(manifest.blocks),
            holes,
            time.monotonic() - started,
        )

    def restore_into(
        self,
        scope: Scope,
        manifest_id: str,
        write_at: Callable[[int, bytes], object],
        *,
        zero_holes: bool = True,
        zero_at: Callable[[int, int], object] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Write the disk through ``write_at(offset, data)`` (called from this thread only).

        Holes are zeroed unless `zero_holes` is False (a target known to be all zeros, such
        as a new sparse disk): through ``zero_at(offset, length)``, once per run of holes,
        when the target has a cheaper way than being written zeros (a volume frees the
        space), else with `write_at`. Returns the bytes written or zeroed. Every block is
        verified before it is written; on an error some blocks may have been written
        already, so the caller must treat the target as unusable.
        """

        def write_run(offset: int, parts: Sequence[bytes]) -> None:
            write_at(offset, parts[0] if len(parts) == 1 else b"".join(parts))

        with self._reading(scope, manifest_id) as (manifest, index, lock):
            return restore_blocks(
                self,
                self.codec(scope),
                manifest,
                index,
                write_run,
                threadsafe=False,
                zero_holes=zero_holes,
                progress=progress,
                tick=lock.maybe_refresh,
                zero_at=zero_at,
            )

    def iter_blocks(
        self,
        scope: Scope,
        manifest_id: str,
        *,
        start: int = 0,
        end: int | None = None,
        holes: bool = True,
    ) -> Iterator[tuple[int, bytes | None]]:
        """The disk's blocks in order as (offset, data), data None for a hole (holes left out
        when `holes` is False); blocks are read ahead in parallel and verified. `start`/`end`
        are byte offsets (block-aligned down/up). The restore lock is held until the iterator
        is exhausted or closed."""
        with self._reading(scope, manifest_id) as (manifest, index, lock):
            bs = manifest.block_size
            last = manifest.disk_size if end is None else min(end, manifest.disk_size)
            first_block, end_block = max(0, start) // bs, -(-last // bs)
            for item in stream_blocks(
                self, self.codec(scope), manifest, index, first_block, end_block, holes
            ):
                lock.maybe_refresh()
                yield item

    def read_range(self, scope: Scope, manifest_id: str, offset: int, length: int) -> bytes:
        """`length` bytes of the disk from `offset` (short at the end of the disk), verified."""
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        with self._reading(scope, manifest_id) as (manifest, index, _lock):
            bs, size = manifest.block_size, manifest.disk_size
            end = min(offset + length, size)
            if end <= offset:
                return b""
            first, last = offset // bs, -(-end // bs)
            parts = [
                data if data is not None else bytes(min(bs, size - block_offset))
                for block_offset, data in stream_blocks(
                    self, self.codec(scope), manifest, index, first, last
                )
            ]
        skip = offset - first * bs
        return b"".join(parts)[skip : skip + end - offset]

    def range_reader(self, scope: Scope, manifest_id: str) -> Callable[[int, int], bytes]:
        """`read(offset, length)` of one backup for many small reads (a disk served while it
        is restored): the manifest and index are loaded once and no lock is taken per read,
        so the caller keeps the backup's blocks from garbage collection by other means (a
        restore of the same backup running meanwhile holds the restore lock). Every block is
        verified as in `read_range`."""
        manifest = self.load_manifest(manifest_id)
        manifest.check_scope(scope)
        index, codec = self.index.refresh(), self.codec(scope)
        bs, size = manifest.block_size, manifest.disk_size

        def read(offset: int, length: int) -> bytes:
            end = min(offset + length, size)
            if offset < 0 or end <= offset:
                return b""
            first, last = offset // bs, -(-end // bs)
            parts = [
                data if data is not None else bytes(min(bs, size - block_offset))
                for block_offset, data in stream_blocks(self, codec, manifest, index, first, last)
            ]
            skip = offset - first * bs
            return b"".join(parts)[skip : skip + end - offset]

        return read

    # ------------------------------------------------------------------------- manifests

    def load_manifest(self, manifest_id: str) -> Manifest:
        """A manifest, checked against its name (not against keys: see `Manifest.check_scope`)."""
        if len(manifest_id) != 64 or not all(c in "0123456789abcdef" for c in manifest_id):
            raise MissingObject(f"{MANIFEST_PREFIX}{manifest_id}", "not a manifest id")
        name = MANIFEST_PREFIX + manifest_id
        data = self.backend.get(name)
        if object_digest(data) != manifest_id:
            raise CorruptObject(name, "content does not match its name")
        return decode_manifest(data, manifest_id)

    def stored_bytes(self, manifest_id: str) -> int:
        """The stored size of the distinct blobs a backup needs: what it would take alone.
        A lookup per block (tens of milliseconds for a large disk), so asked for, not part
        of every backup's result."""
        index = self.index.refresh()
        needed = self.load_manifest(manifest_id).stored_ids()
        return sum(index[block_id].length for block_id in needed)

    def list_manifests(self) -> list[str]:
        return sorted(n.removeprefix(MANIFEST_PREFIX) for n in self.backend.list(MANIFEST_PREFIX))

    def delete_manifest(self, manifest_id: str) -> None:
        """Drop a backup; its blocks are reclaimed by the next garbage collection."""
        self.backend.delete(MANIFEST_PREFIX + manifest_id)

    # ------------------------------------------------------------------ verify, gc, locks

    def verify(self, scope: Scope, manifest_id: str) -> VerifyReport:
        """Read and check every block of one manifest (and the manifest against `scope`)."""
        with self._reading(scope, manifest_id) as (manifest, index, _lock):
            return verify_manifest(self, self.codec(scope), manifest, index)

    def verify_store(self, scopes: Iterable[Scope] = (), *, read_data: bool = True) -> VerifyReport:
        """Check every object; blobs of the given scopes are also decrypted and hashed."""
        return verify_store(self, {s.name: self.codec(s) for s in scopes}, read_data=read_data)

    def gc_plan(
        self,
        live_manifests: Iterable[str] | None = None,
        *,
        grace: float = 3600.0,
        tick: Callable[[], None] | None = None,
    ) -> GcPlan:
        """What a garbage collection would delete (nothing is changed).

        `live_manifests` None keeps every stored manifest; otherwise stored manifests not in it
        and older than `grace` seconds are dropped. `tick` is called after each manifest read
        (a caller's heartbeat: a large store has many).
        """
        live = None if live_manifests is None else frozenset(live_manifests)
        return make_gc_plan(self, live, grace, tick)

    def gc_execute(self, plan: GcPlan, *, tick: Callable[[], None] | None = None) -> GcResult:
        """Carry out `plan` under the rules in this module's docstring; `tick` is called after
        each object deleted. Raises `StoreLocked` while another collection runs and
        `PlanStale` when one rewrote the index since the plan."""
        result = execute_gc(self, plan, tick)
        self.index.refresh()
        return result

    def locks(self) -> list[LockInfo]:
        return read_locks(self.backend)

    def break_dead_locks(self) -> list[str]:
        """Remove the locks whose holders are dead (the rules in locks.py); their names."""
        removed: list[str] = []
        live_locks(self.backend, self.clock(), removed)
        return removed

    def break_stale_locks(self, older_than: float) -> list[str]:
        """Remove locks not refreshed for `older_than` seconds (their holder has died)."""
        now = self.clock()
        stale = [lock.name for lock in self.locks() if now - lock.refreshed > older_than]
        for name in stale:
            self.backend.delete(name)
        return stale

    def rebuild_index(self) -> str | None:
        """Write one index file from the pack tables and delete the old index files."""
        name = rebuild_index(self.backend)
        self.index.refresh()
        return name


def _pwritev_all(fd: int, parts: Sequence[bytes], offset: int) -> int:
    """Write the buffers back to back from `offset` (``pwritev`` may write less than asked,
    and takes at most IOV_MAX buffers a call); returns the bytes written."""
    pending: list[bytes | memoryview] = list(parts)
    first = total = 0  # pending[first:] is still to write
    while first < len(pending):
        written = os.pwritev(fd, pending[first : first + _IOV_MAX], offset)
        total += written
        offset += written
        while first < len(pending) and written >= len(pending[first]):
            written -= len(pending[first])
            first += 1
        if written:
            pending[first] = memoryview(pending[first])[written:]
    return total
