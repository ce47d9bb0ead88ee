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
naming the source; the engine then fails the backup and stores nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TypeVar
from urllib.parse import urlsplit

from .errors import NbdSourceFailed, NbdUriInvalid, RangeError
from .libnbd import BASE_ALLOCATION, STATE_DIRTY, STATE_ZERO, NbdHandle, NbdModule, load
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
]

SCHEMES = ("nbd", "nbds", "nbd+unix", "nbds+unix", "nbd+vsock", "nbds+vsock")
MAX_REQUEST = 32 << 20
"""Largest single NBD read or write (servers accept 32 MiB; libnbd refuses over 64 MiB)."""
STATUS_SPAN = 1 << 30
"""Bytes asked of one block-status request (servers may answer for fewer)."""
_T = TypeVar("_T")
CONNECT_SECONDS = 30.0
"""How long connecting and the NBD handshake may take."""
BITMAP_GRANULARITY = 64 << 10
"""qemu's default bitmap granularity, reported as the view's block size."""


@dataclass(frozen=True)
class NbdSource:
    """Where an external disk lives: a libnbd URI, its dirty bitmap and its TLS PSK file."""

    uri: str
    bitmap: str = ""
    tls_psk_file: str = ""

    @property
    def bitmap_context(self) -> str:
        return f"qemu:dirty-bitmap:{self.bitmap}"


def check_source(source: NbdSource) -> NbdSource:
    """The source if its URI, bitmap name and key file are well-formed, else `NbdUriInvalid`."""
    uri = source.uri
    if not uri or len(uri) > 1024 or any(ord(c) < 0x21 for c in uri):
        raise NbdUriInvalid(uri=uri[:100], reason="give a URI such as nbd://HOST:PORT/EXPORT")
    scheme = urlsplit(uri).scheme
    if scheme not in SCHEMES:
        raise NbdUriInvalid(uri=uri, reason=f"scheme must be one of {', '.join(SCHEMES)}")
    if "tls-psk-file=" in uri:
        raise NbdUriInvalid(uri=uri, reason="give the TLS key file separately (--tls-psk)")
    bitmap = source.bitmap
    if len(bitmap) > 1023 or any(ord(c) < 0x21 for c in bitmap):
        raise NbdUriInvalid(uri=uri, reason=f"bad bitmap name {bitmap[:100]!r}")
    if source.tls_psk_file and not source.tls_psk_file.startswith("/"):
        raise NbdUriInvalid(uri=uri, reason="the TLS PSK file must be an absolute path")
    return source


def _merged(extents: Iterable[Extent]) -> list[Extent]:
    out: list[Extent] = []
    for offset, length in extents:
        if out and out[-1][0] + out[-1][1] == offset:
            out[-1] = (out[-1][0], out[-1][1] + length)
        elif length:
            out.append((offset, length))
    return out


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


class _StatusReply:
    """Collects one block-status reply: the matching extents of one context, and how far the
    server's answer for that context reached."""

    def __init__(self, context: str, flag: int, when_set: bool) -> None:
        self.context, self.flag, self.when_set = context, flag, when_set
        self.seen: list[Extent] = []
        self.covered = -1

    def __call__(self, context: str, offset: int, entries: list[int], _error: object) -> int:
        if context != self.context:
            return 0
        start = offset
        for i in range(0, len(entries) - 1, 2):
            length, flags = entries[i], entries[i + 1]
            if bool(flags & self.flag) == self.when_set:
                self.seen.append((start, length))
            start += length
        self.covered = max(self.covered, start)
        return 0


def _connect_within(handle: NbdHandle, uri: str, seconds: float) -> None:
    """Connect and finish the handshake, or `TimeoutError`: a server that accepts but never
    answers (or serves another client first) must not hold a backup job for ever."""
    handle.aio_connect_uri(uri)
    deadline = time.monotonic() + seconds
    while not handle.aio_is_ready():
        if handle.aio_is_dead() or handle.aio_is_closed():
            raise ConnectionError("the server closed the connection during the handshake")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(uri)
        handle.poll(max(1, int(left * 1000)))


class NbdConnection:
    """One libnbd handle on a source; every libnbd error becomes `NbdSourceFailed`."""

    def __init__(self, source: NbdSource, module: NbdModule, handle: NbdHandle) -> None:
        self.source, self._nbd, self._h = source, module, handle
        self.size = self._call(handle.get_size)

    @classmethod
    def open(cls, source: NbdSource) -> NbdConnection:
        module = load()
        handle = module.NBD()
        try:
            handle.add_meta_context(BASE_ALLOCATION)
            if source.bitmap:
                handle.add_meta_context(source.bitmap_context)
            if source.tls_psk_file:
                handle.set_tls_psk_file(source.tls_psk_file)
            _connect_within(handle, source.uri, CONNECT_SECONDS)
        except (module.Error, ConnectionError) as exc:
            raise NbdSourceFailed(uri=source.uri, reason=f"cannot connect: {exc}") from exc
        except TimeoutError as exc:
            raise NbdSourceFailed(
                uri=source.uri,
                reason=f"cannot connect: no NBD handshake within {CONNECT_SECONDS:.0f} s "
                "(a server that takes one client at a time, such as qemu-nbd without -e, may "
                "be busy with another)",
            ) from exc
        return cls(source, module, handle)

    def _call(self, fn: Callable[..., _T], *args: object) -> _T:
        try:
            return fn(*args)
        except self._nbd.Error as exc:
            raise NbdSourceFailed(uri=self.source.uri, reason=str(exc)) from exc

    @property
    def read_only(self) -> bool:
        return bool(self._call(self._h.is_read_only))

    @property
    def has_bitmap(self) -> bool:
        return bool(self.source.bitmap) and bool(
            self._call(self._h.can_meta_context, self.source.bitmap_context)
        )

    def extents(self, context: str, *, flag: int, when_set: bool) -> list[Extent]:
        """Merged extents of `context` whose `flag` is set (or clear, `when_set` False)."""
        found: list[Extent] = []
        pos = 0
        while pos < self.size:
            status = _StatusReply(context, flag, when_set)
            self._call(self._h.block_status, min(STATUS_SPAN, self.size - pos), pos, status)
            if status.covered <= pos:
                raise NbdSourceFailed(uri=self.source.uri, reason=f"no block status for {context}")
            end = min(status.covered, self.size)
            found.extend((o, min(o + n, end) - o) for o, n in status.seen if o < end)
            pos = end
        return _merged(found)

    def allocated(self) -> list[Extent]:
        """A superset of the extents that may hold non-zero data."""
        return self.extents(BASE_ALLOCATION, flag=STATE_ZERO, when_set=False)

    def dirty(self) -> list[Extent]:
        return self.extents(self.source.bitmap_context, flag=STATE_DIRTY, when_set=True)

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise RangeError(volume_id=self.source.uri, reason="read past the end of the source")
        parts = []
        for pos in range(offset, offset + length, MAX_REQUEST):
            count = min(MAX_REQUEST, offset + length - pos)
            data = self._call(self._h.pread, count, pos)
            if len(data) != count:
                raise NbdSourceFailed(uri=self.source.uri, reason=f"short read at {pos}")
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        for pos in range(0, len(view), MAX_REQUEST):
            self._call(self._h.pwrite, bytes(view[pos : pos + MAX_REQUEST]), offset + pos)

    def zero(self, offset: int, length: int) -> None:
        """Make a range read as zeros: NBD WRITE_ZEROES where the server has it (qemu-nbd
        punches a hole, like a trim that promises zeros), else written zeros."""
        can_zero = self._call(self._h.can_zero)
        for pos in range(offset, offset + length, STATUS_SPAN):
            count = min(STATUS_SPAN, offset + length - pos)
            if can_zero:
                self._call(self._h.zero, count, pos)
            else:
                for sub in range(pos, pos + count, MAX_REQUEST):
                    self.write_at(sub, bytes(min(MAX_REQUEST, pos + count - sub)))

    def flush(self) -> None:
        if self._call(self._h.can_flush):
            self._call(self._h.flush)

    def close(self) -> None:
        with contextlib.suppress(self._nbd.Error):  # a server already gone has nothing to flush
            self._h.shutdown()


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
