"""A connection to an NBD source (a hypervisor's disk, any server libnbd reaches): where it is
(`NbdSource`), and the requests a backup or a restore makes on it (`NbdConnection`).

Every request is asynchronous with a deadline: connecting and the handshake may take
`CONNECT_SECONDS`, any other request `IO_SECONDS` (a hung hypervisor, a network gone quiet),
and every libnbd error or missed deadline becomes `NbdSourceFailed` naming the source. A
connection whose request went unanswered is ended at once (its socket shut down; a clean NBD
shutdown would wait for the server too) and refuses every further request.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar
from urllib.parse import urlsplit

from .errors import NbdSourceFailed, NbdUriInvalid, RangeError
from .libnbd import (
    BASE_ALLOCATION,
    STATE_DIRTY,
    STATE_ZERO,
    NbdBuffer,
    NbdHandle,
    NbdModule,
    load,
)
from .sparse import Extent

__all__ = [
    "CONNECT_SECONDS",
    "IO_SECONDS",
    "MAX_REQUEST",
    "NbdConnection",
    "NbdSource",
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
IO_SECONDS = 120.0
"""How long one request may wait for its answer (a 32 MiB read from a slow disk included)."""


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
        self._hung = False
        self._buffer: tuple[int, NbdBuffer] | None = None
        self._lock = threading.RLock()
        """One request at a time, as libnbd's synchronous calls make them (each holds the
        handle for its whole request): a thread polling for its answer while another thread
        took it would wait for nothing until its deadline."""
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

    def _await(self, what: str, start: Callable[[], int]) -> None:
        """Issue an asynchronous request and wait for its answer, at most `IO_SECONDS`."""
        with self._lock:
            if self._hung:
                raise NbdSourceFailed(uri=self.source.uri, reason="an earlier request hung")
            deadline = time.monotonic() + IO_SECONDS
            try:
                cookie = start()
                while not self._h.aio_command_completed(cookie):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._drop()
                        raise NbdSourceFailed(
                            uri=self.source.uri,
                            reason=f"no answer to {what} within {IO_SECONDS:g} s",
                        )
                    self._h.poll(max(1, int(left * 1000)))
            except self._nbd.Error as exc:  # named as the request, whichever call saw it fail
                raise NbdSourceFailed(uri=self.source.uri, reason=f"{what}: {exc}") from exc

    def _drop(self) -> None:
        """End the connection at once, whatever the server does: its socket is shut down
        (the server sees the client go; libnbd sees the connection dead)."""
        self._hung = True
        with contextlib.suppress(OSError, self._nbd.Error):
            fd = self._h.aio_get_fd()
            with socket.fromfd(fd, socket.AF_UNIX, socket.SOCK_STREAM) as duplicate:
                duplicate.shutdown(socket.SHUT_RDWR)

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
            count = min(STATUS_SPAN, self.size - pos)
            self._await("nbd_block_status", partial(self._h.aio_block_status, count, pos, status))
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
            with self._lock:
                buffer = self._read_buffer(count)
                self._await("nbd_pread", partial(self._h.aio_pread, buffer, pos))
                data = bytes(buffer.to_buffer())  # one copy, as a synchronous read makes
            if len(data) != count:
                raise NbdSourceFailed(uri=self.source.uri, reason=f"short read at {pos}")
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _read_buffer(self, count: int) -> NbdBuffer:
        """A buffer of `count` bytes, kept for the next read of that size (under the lock):
        a new one each time (32 MiB, faulted in page by page) halved the read rate."""
        if self._buffer is None or self._buffer[0] != count:
            self._buffer = (count, self._nbd.Buffer(count))
        return self._buffer[1]

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        for pos in range(0, len(view), MAX_REQUEST):
            buffer = self._nbd.Buffer.from_bytearray(bytearray(view[pos : pos + MAX_REQUEST]))
            self._await("nbd_pwrite", partial(self._h.aio_pwrite, buffer, offset + pos))

    def zero(self, offset: int, length: int) -> None:
        """Make a range read as zeros: NBD WRITE_ZEROES where the server has it (qemu-nbd
        punches a hole, like a trim that promises zeros), else written zeros."""
        can_zero = self._call(self._h.can_zero)
        for pos in range(offset, offset + length, STATUS_SPAN):
            count = min(STATUS_SPAN, offset + length - pos)
            if can_zero:
                self._await("nbd_zero", partial(self._h.aio_zero, count, pos))
            else:
                for sub in range(pos, pos + count, MAX_REQUEST):
                    self.write_at(sub, bytes(min(MAX_REQUEST, pos + count - sub)))

    def flush(self) -> None:
        if self._call(self._h.can_flush):
            self._await("nbd_flush", self._h.aio_flush)

    def close(self) -> None:
        if self._hung:  # already ended (`_drop`): a clean shutdown would wait for the server
            return
        with contextlib.suppress(self._nbd.Error):  # a server already gone has nothing to flush
            self._h.shutdown()
