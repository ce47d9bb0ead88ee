"""Finding blocks that are shifted copies of other blocks of the same disk.

File systems place data in 4 KiB units, so a copied file or region lands at some 4 KiB
boundary, and fixed 64 KiB blocks deduplicate it only when the copy starts at the same place
within a block as the original: one time in sixteen. A copy that starts k units further into
its block than the original makes each of its blocks equal to the tail of one block of the
original followed by the head of the next one. Such a block is recorded in the manifest as a
`Shift` of those two blocks and stores no blob (formats.py). On the benchmark image, whose
copies make up 10 % of its bytes, that is 2,900 of 26,000 blocks and 132 MB of 1,260 MB stored.

How a copy is found without indexing every 4 KiB of the disk: each block kept as a blob, with
a blob before it, leaves a fingerprint of its first unit (16 bytes sampled across it) with its
number and both ids. A new block's units 1..n-1 are fingerprinted too; a hit at unit k names a
block j whose start may lie k units into the new block, which then may be the last
``k * unit`` bytes of block j-1 followed by the first ``block size - k * unit`` bytes of block
j. A hit is only a candidate: both blocks are read again from the source, the bytes compared,
and both rehashed against their ids, so a shift is recorded only for data known to be what
those ids name, even if the source changed while it was read.

Only blocks of the disk being backed up, read in this run and up to `MAX_SOURCES` of them,
serve as originals (an incremental with a change map reads only what changed).
"""

from __future__ import annotations

from collections.abc import Callable

from .formats import Shift

__all__ = ["MAX_SOURCES", "SHIFT_UNIT", "ShiftFinder"]

SHIFT_UNIT = 4096
MAX_SOURCES = 1 << 19  # ~90 MB at most: originals from the first 32 GiB of 64 KiB blocks
_SAMPLES = 16  # bytes sampled per unit


class ShiftFinder:
    """Shared by a backup's worker threads.

    A worker adds each block it keeps as a blob, with the block before it, as soon as it has
    hashed both, so copies of data a few batches back are found too; the first block of
    each run read is added by the consumer, which knows the block before it.
    """

    def __init__(
        self,
        read_at: Callable[[int, int], bytes],
        block_id: Callable[[bytes | memoryview], bytes],
        block_size: int,
        unit: int = SHIFT_UNIT,
    ) -> None:
        self.read_at, self.block_id = read_at, block_id
        self.bs, self.unit = block_size, unit
        self.step = unit // _SAMPLES
        self.starts: dict[bytes, tuple[int, bytes, bytes]] = {}
        self._blank = bytes(_SAMPLES)

    def fingerprint(self, data: bytes, at: int) -> bytes | None:
        """The fingerprint of the block at `data[at:]` as an original (None: not usable)."""
        sample = data[at : at + self.unit : self.step]
        return sample if sample != self._blank else None

    def add(self, fingerprint: bytes, number: int, before: bytes, block_id: bytes) -> None:
        """Block `number` (`block_id`) and the one before it (`before`), both kept as blobs
        of full size, may be the original of later blocks."""
        if len(self.starts) < MAX_SOURCES:
            self.starts[fingerprint] = (number, before, block_id)

    def find(self, data: bytes, at: int) -> Shift | None:
        """A shift equal to the full block at `data[at:]`, or None."""
        samples = data[at : at + self.bs : self.step]
        n = _SAMPLES
        for k in range(1, self.bs // self.unit):
            start = self.starts.get(samples[k * n : k * n + n])
            if start is not None:
                shift = self._check(data, at, *start, self.bs - k * self.unit)
                if shift is not None:
                    return shift
        return None

    def _check(
        self, data: bytes, at: int, number: int, first: bytes, second: bytes, offset: int
    ) -> Shift | None:
        bs = self.bs
        source = self.read_at((number - 1) * bs, 2 * bs)
        if len(source) != 2 * bs or not data.startswith(source[offset : offset + bs], at):
            return None
        view = memoryview(source)
        if self.block_id(view[:bs]) != first or self.block_id(view[bs:]) != second:
            return None
        return Shift(first, offset, second)
