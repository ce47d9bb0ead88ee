"""Reading backups back: whole-disk restore and streaming reads, every block verified.

A restore resolves each distinct block id of the manifest to its pack, sorts the blobs by
pack and offset, and reads neighbouring blobs of a pack with one ranged get (gaps up to
`_MAX_GAP` are read and thrown away: one request is cheaper than two on an object store).
Worker threads fetch, decrypt, decompress and check each block (its keyed hash must equal its
id) before any byte of it is written; a block that occurs several times is decoded once.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .backend import Backend
from .codec import BlockCodec
from .errors import CorruptBlock, MissingObject, UnknownBlock
from .formats import Manifest
from .index import Location, pack_object

if TYPE_CHECKING:
    from .store import ChunkStore

__all__ = [
    "BlobRead",
    "RestoreResult",
    "decode_block",
    "fetch_block",
    "get_blobs",
    "plan_reads",
    "resolve_blocks",
    "restore_blocks",
    "stream_blocks",
]

WriteRun = Callable[[int, Sequence[bytes]], object]
"""Writes consecutive buffers starting at an offset (one ``pwritev``, or joined)."""
Progress = Callable[[int, int], None]
_MAX_GAP = 256 * 1024
_MAX_READ = 8 * 1024 * 1024
_MAX_RUN = 8 * 1024 * 1024  # bytes one write of neighbouring blocks carries at most


@dataclass(frozen=True)
class RestoreResult:
    manifest_id: str
    disk_size: int
    written_bytes: int  # bytes written to the target (holes are not written)
    blocks: int
    hole_blocks: int
    seconds: float


@dataclass(frozen=True)
class BlobRead:
    pack: str
    start: int
    length: int
    blobs: tuple[tuple[bytes, int, int], ...]  # (block id, offset in pack, length)


def resolve_blocks(manifest: Manifest, index: dict[bytes, Location]) -> dict[bytes, Location]:
    found: dict[bytes, Location] = {}
    for block_id in manifest.blocks:
        if block_id is None or block_id in found:
            continue
        loc = index.get(block_id)
        if loc is None:
            raise UnknownBlock(block_id, manifest_id=manifest.manifest_id)
        found[block_id] = loc
    return found


def plan_reads(locations: dict[bytes, Location]) -> list[BlobRead]:
    by_pack: dict[str, list[tuple[int, int, bytes]]] = defaultdict(list)
    for block_id, loc in locations.items():
        by_pack[loc.pack].append((loc.offset, loc.length, block_id))
    reads = []
    for pack, blobs in sorted(by_pack.items()):
        blobs.sort()
        group: list[tuple[bytes, int, int]] = []
        for offset, length, block_id in blobs:
            if group:
                start = group[0][1]
                end = group[-1][1] + group[-1][2]
                if offset - end > _MAX_GAP or offset + length - start > _MAX_READ:
                    reads.append(_make_read(pack, group))
                    group = []
            group.append((block_id, offset, length))
        reads.append(_make_read(pack, group))
    return reads


def _make_read(pack: str, group: list[tuple[bytes, int, int]]) -> BlobRead:
    start = group[0][1]
    end = group[-1][1] + group[-1][2]
    return BlobRead(pack, start, end - start, tuple(group))


def get_blobs(
    backend: Backend, pack: str, start: int, length: int, block_id: bytes, manifest_id: str
) -> bytes:
    try:
        data = backend.get(pack_object(pack), start, length)
    except MissingObject:
        raise MissingObject(
            pack_object(pack), f"holds block {block_id.hex()} of manifest {manifest_id}"
        ) from None
    if len(data) != length:
        raise CorruptBlock(block_id, "pack is truncated", manifest_id=manifest_id, pack=pack)
    return data


def decode_block(
    codec: BlockCodec, block_id: bytes, blob: bytes | memoryview, manifest_id: str, pack: str
) -> bytes:
    try:
        return codec.decode(block_id, blob)
    except CorruptBlock as exc:
        raise CorruptBlock(block_id, exc.detail, manifest_id=manifest_id, pack=pack) from None


def fetch_block(
    store: ChunkStore, codec: BlockCodec, manifest_id: str, block_id: bytes, loc: Location
) -> bytes:
    """One verified block."""
    blob = get_blobs(store.backend, loc.pack, loc.offset, loc.length, block_id, manifest_id)
    return decode_block(codec, block_id, blob, manifest_id, loc.pack)


def restore_blocks(
    store: ChunkStore,
    codec: BlockCodec,
    manifest: Manifest,
    index: dict[bytes, Location],
    write_run: WriteRun,
    *,
    threadsafe: bool,
    zero_holes: bool,
    progress: Progress | None,
    tick: Callable[[], None],
) -> int:
    """Write every block of `manifest` through `write_run`; returns the bytes written.

    With `threadsafe` the workers call `write_run` themselves; otherwise only this thread does.
    """
    bs, size, mid = manifest.block_size, manifest.disk_size, manifest.manifest_id
    positions: dict[bytes, list[int]] = defaultdict(list)
    for i, block_id in enumerate(manifest.blocks):
        if block_id is not None:
            positions[block_id].append(i * bs)
    reads = plan_reads(resolve_blocks(manifest, index))
    total = sum(len(p) for p in positions.values()) * bs
    written = 0

    def work(read: BlobRead) -> list[tuple[int, list[bytes]]] | int:
        first = read.blobs[0][0]
        data = memoryview(get_blobs(store.backend, read.pack, read.start, read.length, first, mid))
        pieces: list[tuple[int, bytes]] = []
        for block_id, off, ln in read.blobs:
            blob = data[off - read.start : off - read.start + ln]
            plain = decode_block(codec, block_id, blob, mid, read.pack)
            pieces += [(offset, plain[: size - offset]) for offset in positions[block_id]]
        runs = _contiguous_runs(pieces)
        if threadsafe:
            return _write_runs(runs, write_run)
        return runs

    with ThreadPoolExecutor(store.workers, "chunkstore-restore") as pool:
        window: deque[Future[list[tuple[int, list[bytes]]] | int]] = deque()
        try:
            for read in reads:
                window.append(pool.submit(work, read))
                while len(window) > store.window or (window and window[0].done()):
                    written += _finish(window.popleft(), write_run)
                    _report(progress, written, total, tick)
            while window:
                written += _finish(window.popleft(), write_run)
                _report(progress, written, total, tick)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    if zero_holes:
        written += _zero_holes(manifest, write_run)
    return written


def _finish(future: Future[list[tuple[int, list[bytes]]] | int], write_run: WriteRun) -> int:
    result = future.result()
    return result if isinstance(result, int) else _write_runs(result, write_run)


def _contiguous_runs(pieces: list[tuple[int, bytes]]) -> list[tuple[int, list[bytes]]]:
    """(offset, data) pieces sorted, with touching neighbours grouped into one run.

    The blocks of one ranged read mostly sit side by side on the disk (a backup writes packs
    in disk order), and one large write costs the kernel far less than many small ones
    (measured on ext4: 1.6 GiB in 64 KiB writes 2.1 s of system time, in 4 MiB writes 0.8 s).
    A run is written with one ``pwritev`` of its blocks rather than joined into a new buffer
    first (1.7 GB written alone: 1.3-3.8 s of system time joined, 0.9 s vectored; a whole
    restore, three runs each: 4.6-5.1 s joined, 4.7-4.8 s vectored).
    """
    pieces.sort(key=lambda piece: piece[0])
    runs: list[tuple[int, list[bytes]]] = []
    end = run_bytes = -1
    for offset, data in pieces:
        # A block repeated over a long stretch of the disk would make one huge run: cap it.
        if offset == end and run_bytes + len(data) <= _MAX_RUN:
            runs[-1][1].append(data)
            run_bytes += len(data)
        else:
            runs.append((offset, [data]))
            run_bytes = len(data)
        end = offset + len(data)
    return runs


def _write_runs(runs: list[tuple[int, list[bytes]]], write_run: WriteRun) -> int:
    for offset, parts in runs:
        write_run(offset, parts)
    return sum(len(data) for _, parts in runs for data in parts)


def _report(progress: Progress | None, done: int, total: int, tick: Callable[[], None]) -> None:
    tick()
    if progress is not None:
        progress(min(done, total), total)


def _zero_holes(manifest: Manifest, write_run: WriteRun) -> int:
    bs, size = manifest.block_size, manifest.disk_size
    zero = bytes(bs)
    written = 0
    for i, block_id in enumerate(manifest.blocks):
        if block_id is None:
            chunk = zero[: min(bs, size - i * bs)]
            write_run(i * bs, [chunk])
            written += len(chunk)
    return written


def stream_blocks(
    store: ChunkStore,
    codec: BlockCodec,
    manifest: Manifest,
    index: dict[bytes, Location],
    first: int,
    end: int,
) -> Iterator[tuple[int, bytes | None]]:
    """Blocks [first, end) in disk order as (offset, data or None for a hole), read ahead."""
    bs, size, mid = manifest.block_size, manifest.disk_size, manifest.manifest_id
    wanted = Manifest(**{**manifest.__dict__, "blocks": manifest.blocks[first:end]})
    locations = resolve_blocks(wanted, index)
    with ThreadPoolExecutor(store.workers, "chunkstore-read") as pool:
        window: deque[tuple[int, Future[bytes] | None]] = deque()
        try:
            for i in range(first, end):
                block_id = manifest.blocks[i]
                future = (
                    None
                    if block_id is None
                    else pool.submit(fetch_block, store, codec, mid, block_id, locations[block_id])
                )
                window.append((i, future))
                if len(window) > store.window * 4:
                    yield _stream_item(window.popleft(), bs, size)
            while window:
                yield _stream_item(window.popleft(), bs, size)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _stream_item(
    item: tuple[int, Future[bytes] | None], bs: int, size: int
) -> tuple[int, bytes | None]:
    i, future = item
    return i * bs, None if future is None else future.result()[: size - i * bs]
