"""External volumes: disks that live in a hypervisor and are read and written over NBD.

An external volume is an NBD export (``qemu-nbd -B BITMAP``, libvirt's backup pull mode, any
server libnbd can reach) with, optionally, a persistent dirty bitmap. It is another volume
backend: the backup engine asks its view for the extents to read and does not care where the
bytes live.

Which extents a backup reads
    * a full backup reads the extents ``base:allocation`` does not report as zeros;
    * an incremental reads the extents the dirty bitmap marks (``qemu:dirty-bitmap:NAME``),
      only when that is provably a superset of what changed since the parent backup: the
      bitmap is offered by the server, the parent backup read it too, and it still marks every
      extent it marked then. OpenCBR never clears a bitmap, so a bitmap that lost marks was
      reset (a migration, an operator) and may have missed writes. Otherwise the view answers
      "changes unknown" and the engine reads every allocated extent against the parent (only
      blocks the store lacks are stored); the `ReadRecord` says why.

What this check cannot see: a reset made while the bitmap held no mark the previous backup
saw (the previous backup read an empty bitmap, writes came, the bitmap was reset, more writes
came) looks like a bitmap that only saw the later writes. The first backup after a bitmap is
created therefore reads everything (there is no previous read of it), and an operator who
resets a bitmap should take a full backup (a policy's `full_backup_interval`, or a new bitmap).

What an NBD export cannot tell: whether a bitmap is disabled (qemu refuses to export one whose
name it does not know, but exports a disabled one). Consistency is the source's: the export
should be a point-in-time image (libvirt ``backup-begin`` pull mode, a snapshot, a stopped VM).

Faults: every libnbd error (server gone, read error, short reply) becomes `NbdSourceFailed`
naming the source; the engine then fails the backup and stores nothing. So does a request
the server leaves unanswered for too long (nbd_connection.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .nbd_connection import NbdConnection, NbdSource, check_source
from .sparse import Extent
from .view_exit import AbortsOnExit
from .volume import WriteData

__all__ = [
    "BITMAP_GRANULARITY",
    "NbdBackupView",
    "NbdConnection",
    "NbdSource",
    "NbdVolume",
    "ReadRecord",
    "check_source",
    "uncovered_bytes",
]

BITMAP_GRANULARITY = 64 << 10
"""qemu's default bitmap granularity, reported as the view's block size."""


def uncovered_bytes(old: list[Extent], new: list[Extent]) -> int:
    """Bytes of `old` (merged, ordered) that `new` (merged, ordered) does not cover."""
    missing, j = 0, 0
    for offset, length in old:
        pos, end = offset, offset + length
        while pos < end:
            while j < len(new) and new[j][0] + new[j][1] <= pos:
                j += 1
            if j == len(new) or new[j][0] >= end:
                missing += end - pos
                break
            if new[j][0] > pos:
                missing += new[j][0] - pos
            pos = new[j][0] + new[j][1]
    return missing


@dataclass(frozen=True)
class ReadRecord:
    """What a backup of an external disk saw: kept with the backup, compared by the next one."""

    bitmap: str
    marked: list[Extent] = field(default_factory=list)
    bitmap_present: bool = False
    mode: str = "full"
    reason: str = ""


class NbdBackupView(AbortsOnExit):
    """A backup's view of an external volume (the `BackupView` protocol).

    `previous` is the record of the backup the engine's change map is relative to (the
    disk's last backup); `record` is this one's, complete once the engine has asked for its
    extents."""

    def __init__(
        self, volume_id: str, connection: NbdConnection, previous: ReadRecord | None
    ) -> None:
        self._volume_id, self._conn, self._previous = volume_id, connection, previous
        source = connection.source
        present = connection.has_bitmap
        marked = connection.dirty() if present else []
        self.record = ReadRecord(source.bitmap, marked, present, "full", _FIRST)
        self.closed = False

    @property
    def volume_id(self) -> str:
        return self._volume_id

    @property
    def size(self) -> int:
        return self._conn.size

    @property
    def block_size(self) -> int:
        return BITMAP_GRANULARITY

    @property
    def encrypted(self) -> bool:
        return False

    def changed_extents(self) -> list[Extent] | None:
        """The bitmap's marks when they cover every change since the previous backup; None
        (read everything) otherwise, with the reason in `record`."""
        reason = self._unusable_because()
        if reason:
            self.record = replace(self.record, reason=reason)
            return None
        self.record = replace(self.record, mode="bitmap", reason="")
        return list(self.record.marked)

    def _unusable_because(self) -> str:
        name, record, previous = self.record.bitmap, self.record, self._previous
        if not name:
            return "no dirty bitmap is registered for this disk"
        if not record.bitmap_present:
            return f"dirty bitmap {name} is missing on the source"
        if previous is None or previous.bitmap != name or not previous.bitmap_present:
            return f"the previous backup did not read dirty bitmap {name}"
        lost = uncovered_bytes(previous.marked, record.marked)
        if lost:
            return (
                f"dirty bitmap {name} no longer marks {lost} bytes it marked at the previous "
                "backup (it was reset or replaced)"
            )
        return ""

    def allocated_extents(self) -> list[Extent]:
        return self._conn.allocated()

    def read_at(self, offset: int, length: int) -> bytes:
        return self._conn.read_at(offset, length)

    def commit(self) -> None:
        self._close()

    def abort(self) -> None:
        self._close()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self._conn.close()


_FIRST = "no usable previous backup of this disk in the vault, or a full backup was due"


class NbdVolume:
    """An external disk as a volume: backup views and restore writes over NBD."""

    def __init__(self, volume_id: str, source: NbdSource, previous: ReadRecord | None) -> None:
        self.volume_id, self.source, self.previous = volume_id, source, previous
        self._writer: NbdConnection | None = None

    def begin_backup(self) -> NbdBackupView:
        connection = NbdConnection.open(self.source)
        try:
            return NbdBackupView(self.volume_id, connection, self.previous)
        except BaseException:
            connection.close()
            raise

    def _target(self) -> NbdConnection:
        if self._writer is None:
            self._writer = NbdConnection.open(self.source)
        return self._writer

    def write(self, offset: int, data: WriteData, length: int | None = None) -> int:
        target = self._target()
        if isinstance(data, bytes | bytearray | memoryview):
            target.write_at(offset, data)
            return len(data)
        pos = offset
        for piece in data:
            chunk = memoryview(piece)
            target.write_at(pos, chunk)
            pos += len(chunk)
        return pos - offset

    def write_zeroes(self, offset: int, length: int) -> int:
        self._target().zero(offset, length)
        return length

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
