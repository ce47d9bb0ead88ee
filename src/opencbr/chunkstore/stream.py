"""Blocks of a backup in disk order, read ahead: what a disk's copy from a backup and the NBD
reads of a backup consume one block at a time.

Consecutive blocks stored close together in one pack (as a backup writes them: in disk order)
are fetched with one ranged read of up to `_MAX_READ` bytes, and consecutive shifted blocks
are cut together from sources read once, not one read per block: on an S3
store each read is a request, and one per 64 KiB block made a restore from S3 ten times slower
than the same restore through `restore_blocks`, which plans its reads the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from .codec import BlockCodec
from .formats import Manifest, stored_ids
from .index import Location
from .parts import StoreParts
from .restore import (
    _MAX_GAP,
    _MAX_READ,
    cut_shifted,
    decode_block,
    get_blobs,
    resolve_blocks,
)

__all__ = ["stream_blocks"]

Run = list[tuple[int, bytes]]  # (block number, block id) of consecutive blocks
_SHIFTED_RUN = 64  # consecutive shifted blocks cut together (their sources read at once)


def _joins(run: Run, block_id: bytes, locations: dict[bytes, Location]) -> bool:
    """Whether the block after `run` is stored just after the run's last one, in its pack."""
    first, last, loc = locations[run[0][1]], locations[run[-1][1]], locations[block_id]
    end = last.offset + last.length
    return (
        loc.pack == last.pack
        and end <= loc.offset <= end + _MAX_GAP
        and loc.offset + loc.length - first.offset <= _MAX_READ
    )


def stream_blocks(
    store: StoreParts,
    codec: BlockCodec,
    manifest: Manifest,
    index: dict[bytes, Location],
    first: int,
    end: int,
    holes: bool = True,
) -> Iterator[tuple[int, bytes | None]]:
    """Blocks [first, end) in disk order as (offset, data or None for a hole), read ahead.
    Without `holes`, only blocks that hold data are yielded: a mostly empty disk is not
    walked slot by slot by the consumer."""
    bs, size, mid = manifest.block_size, manifest.disk_size, manifest.manifest_id
    shifted = {i - first: s for i, s in manifest.shifted.items() if first <= i < end}
    locations = resolve_blocks(stored_ids(manifest.blocks[first:end], shifted), index, mid)

    def read(run: Run) -> list[bytes]:
        if run[0][0] in manifest.shifted:
            numbers = [i for i, _ in run]
            return [block for _, block in cut_shifted(store, codec, manifest, locations, numbers)]
        locs = [locations[block_id] for _, block_id in run]
        start = locs[0].offset
        length = locs[-1].offset + locs[-1].length - start
        data = memoryview(get_blobs(store.backend, locs[0].pack, start, length, run[0][1], mid))
        return [
            decode_block(
                codec,
                block_id,
                data[loc.offset - start : loc.offset + loc.length - start],
                mid,
                loc.pack,
            )
            for (_, block_id), loc in zip(run, locs, strict=True)
        ]

    def continues(run: Run, i: int, block_id: bytes | None) -> bool:
        """Whether block `i` is read with `run`: shifted blocks with shifted ones (cut from
        sources read once for all of them), stored ones when stored just after the run."""
        if block_id is None or (i in manifest.shifted) != (run[0][0] in manifest.shifted):
            return False
        if i in manifest.shifted:
            return len(run) < _SHIFTED_RUN
        return _joins(run, block_id, locations)

    # (block number, the read holding it or None for a hole, its place in that read)
    window: deque[tuple[int, Future[list[bytes]] | None, int]] = deque()
    reads_ahead = 0

    def take() -> tuple[int, bytes | None]:
        nonlocal reads_ahead
        i, future, k = window.popleft()
        if future is None:
            return i * bs, None
        blocks = future.result()
        if k == len(blocks) - 1:
            reads_ahead -= 1
        return i * bs, blocks[k][: size - i * bs]

    with ThreadPoolExecutor(store.workers, "chunkstore-read") as pool:

        def submit(run: Run) -> None:
            nonlocal reads_ahead
            future = pool.submit(read, list(run))
            window.extend((i, future, k) for k, (i, _) in enumerate(run))
            reads_ahead += 1
            run.clear()

        try:
            run: Run = []
            blocks = manifest.blocks
            numbers = (
                range(first, end)
                if holes
                else [i for i in range(first, end) if blocks[i] is not None]
            )
            for i in numbers:
                block_id = blocks[i]
                if run and (i != run[-1][0] + 1 or not continues(run, i, block_id)):
                    submit(run)
                if block_id is None:
                    window.append((i, None, 0))
                else:
                    run.append((i, block_id))
                while reads_ahead > store.window or (not reads_ahead and window):
                    yield take()
            if run:
                submit(run)
            while window:
                yield take()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
