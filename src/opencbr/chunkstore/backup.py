"""The backup engine: read a disk in aligned blocks, store the blocks the store lacks.

Work is cut into batches of a few MiB of blocks (one run of contiguous blocks, or several short
ones). Worker threads read a batch, drop holes, hash, look the ids up, and compress + encrypt
only the new blocks; BLAKE3, zstd, AES-GCM and ``os.pread`` all release the GIL. A process pool
was measured against threads (bench/backup_bench.py, bench/README.md): a pool whose workers
read the image themselves was faster in one run and slower in another, but the reader here may
be any callable (a volume's ``read_at``) that cannot be sent to another process, and a pool
that is sent the data was the slowest variant in every run; so threads. The calling thread
consumes batches in order, appends new blobs to a pack buffer and hands full packs to one
writer thread. At most `window` batches and two packs are in memory at once, whatever the disk
size.

A new block that is a shifted copy of two blocks before it is recorded as a `Shift` instead
of a blob (shifts.py).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from .codec import BlockCodec
from .errors import ChunkStoreError
from .formats import (
    Manifest,
    Shift,
    build_pack,
    encode_manifest,
    object_digest,
    runs_of_ones,
    stored_ids,
)
from .index import Location, pack_object, write_index_file
from .parts import StoreParts
from .shifts import ShiftFinder

__all__ = ["BackupPlan", "BackupResult", "ReadAt", "as_read_at", "plan_blocks", "run_backup"]

ReadAt = Callable[[int, int], bytes]
Progress = Callable[[int, int], None]
Extent = tuple[int, int]


class _Block(NamedTuple):
    """What a worker found for one block."""

    block_id: bytes | None  # None: a hole
    length: int
    blob: bytes | None = None  # the encoded block, when the store lacks it
    start: bytes | None = None  # its fingerprint as an original of shifted copies
    shift: Shift | None = None  # stored as a shift instead of a blob


@dataclass(frozen=True)
class BackupResult:
    """What one backup did. Byte counts are exact; `new_bytes` is what the store grew by."""

    manifest_id: str
    mode: str  # "full", "changed-extents" or "full-read" (incremental without a change map)
    disk_size: int
    block_size: int
    data_bytes: int  # bytes in non-hole blocks of the disk
    read_bytes: int  # bytes read from the source
    new_bytes: int  # packs + index file + manifest written by this backup
    new_blocks: int
    reused_blocks: int
    hole_blocks: int
    seconds: float
    shifted_blocks: int = 0  # new blocks stored as shifts of others (shifts.py), no blob


def as_read_at(reader: Any) -> ReadAt:
    """A thread-safe ``read_at(offset, length)`` for a callable or a file object."""
    if callable(reader):
        return reader  # type: ignore[no-any-return]
    fileno = getattr(reader, "fileno", None)
    if fileno is not None:
        try:
            fd = fileno()
        except (OSError, ValueError):
            fd = None
        if isinstance(fd, int):
            return lambda offset, length: _pread_exact(fd, offset, length)
    lock = threading.Lock()

    def read_at(offset: int, length: int) -> bytes:
        with lock:
            reader.seek(offset)
            return reader.read(length)  # type: ignore[no-any-return]

    return read_at


def _pread_exact(fd: int, offset: int, length: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) == length or not data:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _changed_blocks(extents: Sequence[Extent], size: int, block_size: int, count: int) -> bytearray:
    changed = bytearray(count)
    for offset, length in extents:
        if offset < 0 or length < 0 or offset + length > size:
            raise ValueError(f"changed extent ({offset}, {length}) is outside the disk")
        if length:
            first, last = offset // block_size, (offset + length - 1) // block_size
            changed[first : last + 1] = b"\x01" * (last - first + 1)
    return changed


@dataclass
class BackupPlan:
    """Block ids and shifts taken from the parent, the runs of blocks to read, the mode."""

    blocks: list[bytes | None]
    shifted: dict[int, Shift]
    runs: list[tuple[int, int]]
    mode: str


def plan_blocks(
    size: int,
    block_size: int,
    parent: Manifest | None,
    extents: Sequence[Extent] | None,
    unusable: Callable[[set[bytes]], set[bytes]],
    data_extents: Sequence[Extent] | None = None,
) -> BackupPlan:
    """What to take from the parent and what to read.

    A block is taken from the parent only when a change map says it did not change, it lies
    wholly inside both disks, and the blobs it needs are usable (indexed and not condemned by a
    running garbage collection); everything else is read, except, with `data_extents`, the
    blocks outside them: they are zeros (holes), in a full read and past the parent's end.
    """
    count = -(-size // block_size)
    if parent is None or extents is None or parent.block_size != block_size:
        mode = "full" if parent is None else "full-read"
        if data_extents is None:
            return BackupPlan([None] * count, {}, [(0, count)] if count else [], mode)
        # Blocks outside the data extents are zeros: holes, never read.
        runs = runs_of_ones(_changed_blocks(data_extents, size, block_size, count))
        return BackupPlan([None] * count, {}, runs, mode)
    changed = _changed_blocks(extents, size, block_size, count)
    common_end = min(size, parent.disk_size) // block_size  # blocks whole in both disks
    changed[common_end:] = b"\x01" * (count - common_end)
    if data_extents is not None:  # past the parent's end (a grown disk) holes are not read
        may_hold_data = _changed_blocks(data_extents, size, block_size, count)
        changed[common_end:] = may_hold_data[common_end:]
    inherited = list(parent.blocks[:common_end])
    _forget_changed(inherited, changed)
    shifted = {i: s for i, s in parent.shifted.items() if i < common_end and not changed[i]}
    refused = unusable(stored_ids(inherited, shifted))
    if refused:  # read those blocks again
        for i, shift in list(shifted.items()):
            if shift.first in refused or shift.second in refused:
                changed[i] = 1
                del shifted[i]
        for i, block_id in enumerate(inherited):
            if block_id in refused and i not in shifted:
                changed[i] = 1
        _forget_changed(inherited, changed)
    blocks = inherited + [None] * (count - common_end)
    return BackupPlan(blocks, shifted, runs_of_ones(changed), "changed-extents")


def _forget_changed(blocks: list[bytes | None], changed: bytearray) -> None:
    """Clear the ids of the blocks flagged as changed (run by run: disks have tens of
    thousands of blocks, a change touches few)."""
    for start, end in runs_of_ones(changed[: len(blocks)]):
        blocks[start:end] = [None] * (end - start)


def _batches(runs: list[tuple[int, int]], per_batch: int) -> Iterator[list[tuple[int, int]]]:
    """The runs cut into batches of at most `per_batch` blocks. Short runs share a batch: a
    change map of scattered writes has a thousand runs of one or two blocks, and a batch
    each would cost a hand-off to a worker and back for every 64 KiB."""
    batch: list[tuple[int, int]] = []
    room = per_batch
    for start, end in runs:
        while start < end:
            take = min(end - start, room)
            batch.append((start, start + take))
            start += take
            room -= take
            if not room:
                yield batch
                batch, room = [], per_batch
    if batch:
        yield batch


class _PackWriter:
    """Collects new blobs into packs and writes each full pack on one background thread."""

    def __init__(self, store: StoreParts, scope_name: str, pool: ThreadPoolExecutor) -> None:
        self._store = store
        self._scope = scope_name
        self._pool = pool
        self._blobs: list[tuple[bytes, bytes]] = []
        self._size = 0
        self._pending: deque[Future[None]] = deque()
        self.locations: dict[bytes, Location] = {}
        self.added: set[bytes] = set()
        self.bytes_written = 0

    def add(self, block_id: bytes, blob: bytes) -> None:
        self.added.add(block_id)
        self._blobs.append((block_id, blob))
        self._size += len(blob)
        if self._size >= self._store.pack_size:
            self.flush()

    def flush(self) -> None:
        if not self._blobs:
            return
        data = build_pack(self._scope, int(self._store.clock() * 1000), self._blobs)
        digest = object_digest(data)
        offset = len(data) - self._size
        for block_id, blob in self._blobs:
            self.locations[block_id] = Location(digest, offset, len(blob))
            offset += len(blob)
        self._blobs, self._size = [], 0
        self.bytes_written += len(data)
        while len(self._pending) >= 2:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._store.backend.put, pack_object(digest), data))

    def wait(self) -> None:
        while self._pending:
            self._pending.popleft().result()


class _BackupRun:
    """One backup in progress (see the module docstring for the pipeline)."""

    def __init__(
        self,
        store: StoreParts,
        codec: BlockCodec,
        index: dict[bytes, Location],
        condemned: frozenset[str],
        read_at: ReadAt,
        size: int,
    ) -> None:
        self.store, self.codec, self.read_at, self.size = store, codec, read_at, size
        self.index, self.condemned = index, condemned
        self.bs = store.block_size
        self.zero = bytes(self.bs)
        self.seen: set[bytes] = set()
        self.read_bytes = self.new_blocks = self.shifted_blocks = 0
        self.blocks: list[bytes | None] = []
        self.shifted: dict[int, Shift] = {}
        self.shifts: ShiftFinder | None = None
        self.known_shifts: dict[bytes, Shift] = {}

    def start(self, plan: BackupPlan, parent: Manifest | None) -> None:
        """Take the plan's inherited blocks. Shifted copies are looked for when the store's
        shift unit divides the block size into several units; a block read again that the
        parent stored as a shift keeps that shift while its blocks are usable."""
        self.blocks, self.shifted = plan.blocks, plan.shifted
        unit = self.store.shift_unit
        if unit and self.bs // unit >= 2:
            self.shifts = ShiftFinder(self.read_at, self.codec.block_id, self.bs, unit)
        if parent is not None and parent.shifted and parent.block_size == self.bs:
            known = {cast(bytes, parent.blocks[i]): s for i, s in parent.shifted.items()}
            refused = self.unusable({b for s in known.values() for b in (s.first, s.second)})
            self.known_shifts = {
                block_id: s
                for block_id, s in known.items()
                if s.first not in refused and s.second not in refused
            }

    def _shift_of(self, data: bytes, at: int, block_id: bytes) -> Shift | None:
        """A shift for a full block the store lacks: the parent's for it, or one found."""
        known = self.known_shifts.get(block_id)
        if known is not None or self.shifts is None:
            return known
        return self.shifts.find(data, at)

    def usable(self, block_id: bytes) -> bool:
        loc = self.index.get(block_id)
        return loc is not None and loc.pack not in self.condemned

    def unusable(self, block_ids: set[bytes]) -> set[bytes]:
        """The ids of `block_ids` that `usable` refuses, with set operations (a parent has
        tens of thousands)."""
        refused = block_ids - self.index.keys()
        if self.condemned:
            refused |= {b for b in block_ids - refused if self.index[b].pack in self.condemned}
        return refused

    def process(self, batch: list[tuple[int, int]]) -> list[tuple[int, list[_Block]]]:
        """Worker: read each run [first, end) of blocks and encode the blocks the store lacks."""
        return [(first, self._process_run(first, end)) for first, end in batch]

    def _process_run(self, first: int, end: int) -> list[_Block]:
        offset = first * self.bs
        length = min(end * self.bs, self.size) - offset
        data = self.read_at(offset, length)
        if len(data) != length:
            raise ChunkStoreError(
                f"source returned {len(data)} bytes at offset {offset}, expected {length}"
            )
        if not isinstance(data, bytes):  # a reader may hand out other buffers
            data = bytes(data)
        view = memoryview(data)  # slices without copies; hash, zstd and AES take buffers
        out: list[_Block] = []
        before: bytes | None = None  # the previous block, when a full block kept as a blob
        for number, at in enumerate(range(0, length, self.bs), start=first):
            block = self._block(data, view, at)
            if block.start is not None and number > first:  # the first is the consumer's
                self._add_original(block.start, number, before, block.block_id)
                block = block._replace(start=None)
            out.append(block)
            before = block.block_id if block.shift is None and block.length == self.bs else None
        return out

    def _block(self, data: bytes, view: memoryview, at: int) -> _Block:
        """One block of a batch: a hole, a blob the store has, a shift, or a new blob."""
        chunk = view[at : at + self.bs]
        # Not `chunk == zero`: CPython compares a memoryview element by element, ~100x
        # slower than the memcmp behind startswith (and it holds the GIL meanwhile).
        if data.startswith(self.zero[: len(chunk)], at):
            return _Block(None, len(chunk))
        block_id = self.codec.block_id(chunk)
        whole = len(chunk) == self.bs
        blob = None
        if block_id not in self.seen and not self.usable(block_id):
            shift = self._shift_of(data, at, block_id) if whole else None
            if shift is not None:
                return _Block(block_id, len(chunk), shift=shift)
            self.seen.add(block_id)
            blob = self.codec.encode(block_id, chunk)
        start = self.shifts.fingerprint(data, at) if self.shifts is not None and whole else None
        return _Block(block_id, len(chunk), blob, start)

    def _add_original(
        self, start: bytes, number: int, before: bytes | None, block_id: bytes | None
    ) -> None:
        if self.shifts is not None and before is not None and block_id is not None:
            self.shifts.add(start, number, before, block_id)

    def run(
        self,
        runs: list[tuple[int, int]],
        progress: Progress | None,
        tick: Callable[[], None],
    ) -> _PackWriter:
        per_batch = max(1, self.store.batch_bytes // self.bs)
        with (
            ThreadPoolExecutor(1, "chunkstore-put") as put_pool,
            ThreadPoolExecutor(self.store.workers, "chunkstore-backup") as pool,
        ):
            writer = _PackWriter(self.store, self.codec.scope.name, put_pool)
            try:
                self._consume(pool, writer, _batches(runs, per_batch), progress, tick)
                writer.flush()
                writer.wait()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return writer

    def _consume(
        self,
        pool: ThreadPoolExecutor,
        writer: _PackWriter,
        batches: Iterator[list[tuple[int, int]]],
        progress: Progress | None,
        tick: Callable[[], None],
    ) -> None:
        window: deque[Future[list[tuple[int, list[_Block]]]]] = deque()
        for batch in batches:
            window.append(pool.submit(self.process, batch))
            if len(window) >= self.store.window:
                self._take(window.popleft(), writer, progress)
                tick()
        while window:
            self._take(window.popleft(), writer, progress)
            tick()

    def _take(
        self,
        future: Future[list[tuple[int, list[_Block]]]],
        writer: _PackWriter,
        progress: Progress | None,
    ) -> None:
        """Record a batch's results in disk order. The first block of each run becomes an
        original for shifts here, where the block before it is known."""
        end = 0
        for first, blocks in future.result():
            for i, (block_id, length, blob, start, shift) in enumerate(blocks, start=first):
                self.blocks[i] = block_id
                self.read_bytes += length
                if shift is not None:
                    self.shifted[i] = shift
                    self.shifted_blocks += 1
                    continue
                if blob is not None and block_id is not None and block_id not in writer.added:
                    writer.add(block_id, blob)
                    self.new_blocks += 1
                if start is not None and i and i - 1 not in self.shifted:
                    self._add_original(start, i, self.blocks[i - 1], block_id)
            end = first + len(blocks)
        if progress is not None:
            progress(min(end * self.bs, self.size), self.size)


def run_backup(
    store: StoreParts,
    codec: BlockCodec,
    read_at: ReadAt,
    size: int,
    parent: Manifest | None,
    extents: Sequence[Extent] | None,
    progress: Progress | None,
    tick: Callable[[], None],
    index: dict[bytes, Location],
    condemned: frozenset[str],
    data_extents: Sequence[Extent] | None = None,
) -> BackupResult:
    """Back up one disk; the caller holds the backup lock and has refreshed the index."""
    started = time.monotonic()
    engine = _BackupRun(store, codec, index, condemned, read_at, size)
    plan = plan_blocks(size, store.block_size, parent, extents, engine.unusable, data_extents)
    engine.start(plan, parent)
    writer = engine.run(plan.runs, progress, tick)
    blocks, shifted = engine.blocks, engine.shifted  # the plan's, completed by the run
    new_bytes = writer.bytes_written
    if writer.locations:
        locations = sorted(writer.locations.items())
        name, index_size = write_index_file(store.backend, locations)
        store.index.add(name, locations)
        new_bytes += index_size
    data = encode_manifest(
        codec.scope,
        size,
        store.block_size,
        int(store.clock() * 1000),
        parent.manifest_id if parent else None,
        blocks,
        shifted,
    )
    manifest_id = object_digest(data)
    if shifted:
        store.require_version(2)
    store.backend.put(f"manifests/{manifest_id}", data)
    if progress is not None:
        progress(size, size)
    return _result(
        manifest_id,
        plan.mode,
        size,
        store.block_size,
        blocks,
        engine,
        new_bytes + len(data),
        time.monotonic() - started,
    )


def _result(
    manifest_id: str,
    mode: str,
    size: int,
    block_size: int,
    blocks: list[bytes | None],
    engine: _BackupRun,
    new_bytes: int,
    seconds: float,
) -> BackupResult:
    holes = blocks.count(None)
    last = size - (len(blocks) - 1) * block_size if blocks else 0
    data_bytes = (len(blocks) - holes) * block_size
    if blocks and blocks[-1] is not None:
        data_bytes -= block_size - last
    return BackupResult(
        manifest_id=manifest_id,
        mode=mode,
        disk_size=size,
        block_size=block_size,
        data_bytes=data_bytes,
        read_bytes=engine.read_bytes,
        new_bytes=new_bytes,
        new_blocks=engine.new_blocks,
        reused_blocks=len(blocks) - holes - engine.new_blocks - engine.shifted_blocks,
        hole_blocks=holes,
        seconds=seconds,
        shifted_blocks=engine.shifted_blocks,
    )
