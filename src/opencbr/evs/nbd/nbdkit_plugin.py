"""nbdkit's Python plugin for OpenCBR exports: nbdkit speaks NBD, this file forwards to the
broker (broker.py) of the OpenCBR process that owns the volumes.

Run by nbdkit's own interpreter (``nbdkit python nbdkit_plugin.py control=SOCKET``), never
imported by OpenCBR. What goes where, and why:

* every write, zero, trim and flush goes to the broker, so it passes through the volume layer
  (encryption, the change map that the next incremental backup reads, a backup view's
  copy-on-write);
* reads of an encrypted disk go to the broker too (it decrypts); reads of a plain disk are
  ``os.preadv`` of the image into nbdkit's buffer (the image *is* the plaintext, and this is
  the measured fast path: no copy through the control socket);
* block status is ``SEEK_DATA``/``SEEK_HOLE`` on the image: a hole reads as zeros on plain and
  encrypted disks alike (not on a disk whose copy from a backup still runs: it has none then);
* a background ``WATCH`` per handle learns when the export dies; from then on every request of
  the handle fails, including the reads served from the image.

Multi-connection is safe: all connections of one export reach the same volume through one
broker, a flush makes the whole image durable, and reads of the image see every write the
broker acknowledged (one page cache).
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import socket
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import nbdkit  # type: ignore[import-not-found]  # provided by nbdkit at run time

API_VERSION = 2
_BATCH_EXTENT = 1 << 30  # block status answers at most this many bytes at a time


def _load_wire() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "opencbr_nbd_wire", Path(__file__).with_name("wire.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wire = _load_wire()
_control = ""
_pool: list[socket.socket] = []
_pool_lock = threading.Lock()


class RemoteError(Exception):
    def __init__(self, err: int) -> None:
        super().__init__(os.strerror(err))
        self.errno = err


class Handle:
    def __init__(self, opened: dict[str, Any]) -> None:
        self.id = int(opened["handle"])
        self.size = int(opened["size"])
        self.read_only = bool(opened["read_only"])
        image = opened["image"]  # none for a source export: every read goes to the broker
        self.fd = os.open(image, os.O_RDONLY | os.O_CLOEXEC) if image else -1
        self.direct_reads = bool(opened["direct_reads"])
        self.extents = bool(opened["extents"])
        self.alive = True


def config(key: str, value: str) -> None:
    global _control
    if key != "control":
        raise RuntimeError(f"unknown parameter {key}")
    _control = value


def config_complete() -> None:
    if not _control:
        raise RuntimeError("control=SOCKET is required")


def thread_model() -> int:
    return int(nbdkit.THREAD_MODEL_PARALLEL)


def _call(op: int, handle: int, offset: int = 0, length: int = 0, payload: Any = b"") -> bytes:
    """One request on a pooled control connection; its reply's payload."""
    with _pool_lock:
        sock = _pool.pop() if _pool else None
    if sock is None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(_control)
    try:
        size = len(payload)
        sock.sendall(wire.REQUEST.pack(op, handle, offset, size or length))
        if size:
            sock.sendall(payload)
        err, count = wire.REPLY.unpack(wire.recv_exact(sock, wire.REPLY.size))
        data = wire.recv_exact(sock, count) if count else b""
    except BaseException:
        sock.close()
        raise
    with _pool_lock:
        _pool.append(sock)
    if err:
        raise RemoteError(err)
    return bytes(data)


def _checked(h: Handle, op: int, offset: int = 0, length: int = 0, payload: Any = b"") -> bytes:
    if not h.alive:
        nbdkit.set_error(errno.ESHUTDOWN)
        raise RuntimeError("the export was closed")
    try:
        return _call(op, h.id, offset, length, payload)
    except RemoteError as exc:
        nbdkit.set_error(exc.errno)
        raise


def _watch(h: Handle) -> None:
    """Blocks until the broker says the export died (or the broker is gone)."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(_control)
        sock.sendall(wire.REQUEST.pack(wire.WATCH, h.id, 0, 0))
        sock.recv(wire.REPLY.size)
    except OSError:
        pass
    h.alive = False


def open(readonly: bool) -> Handle:
    request = wire.encode_json({"name": nbdkit.export_name(), "readonly": bool(readonly)})
    try:
        opened = wire.decode_json(_call(wire.OPEN, 0, payload=request))
    except RemoteError as exc:
        nbdkit.set_error(exc.errno)
        raise
    h = Handle(opened)
    threading.Thread(target=_watch, args=(h,), daemon=True).start()
    return h


def close(h: Handle) -> None:
    h.alive = False
    if h.fd >= 0:
        os.close(h.fd)
    with contextlib.suppress(OSError, RemoteError):
        _call(wire.CLOSE, h.id)


def get_size(h: Handle) -> int:
    return h.size


def can_write(h: Handle) -> bool:
    return not h.read_only


def can_multi_conn(h: Handle) -> bool:
    return True


def can_flush(h: Handle) -> bool:
    return True


def can_trim(h: Handle) -> bool:
    return not h.read_only


def can_zero(h: Handle) -> bool:
    return not h.read_only


def can_extents(h: Handle) -> bool:
    return h.extents


def pread(h: Handle, buf: Any, offset: int, flags: int) -> None:
    if not h.direct_reads:
        buf[:] = _checked(h, wire.READ, offset, len(buf))
        return
    if not h.alive:
        nbdkit.set_error(errno.ESHUTDOWN)
        raise RuntimeError("the export was closed")
    view = memoryview(buf)
    done = 0
    while done < len(view):
        count = os.preadv(h.fd, [view[done:]], offset + done)
        if count == 0:  # past the image's end: cannot happen within the disk size
            nbdkit.set_error(errno.EIO)
            raise RuntimeError("short read")
        done += count


def pwrite(h: Handle, buf: Any, offset: int, flags: int) -> None:
    _checked(h, wire.WRITE, offset, payload=buf)
    if flags & nbdkit.FLAG_FUA:
        _checked(h, wire.FLUSH)


def zero(h: Handle, count: int, offset: int, flags: int) -> None:
    _checked(h, wire.ZERO, offset, count)
    if flags & nbdkit.FLAG_FUA:
        _checked(h, wire.FLUSH)


def trim(h: Handle, count: int, offset: int, flags: int) -> None:
    """A trimmed range may read as anything; the volume makes it a hole that reads as zeros."""
    zero(h, count, offset, flags)


def flush(h: Handle, flags: int) -> None:
    _checked(h, wire.FLUSH)


def extents(h: Handle, count: int, offset: int, flags: int) -> list[tuple[int, int, int]]:
    """Data and holes of the image from ``offset`` (at most ``_BATCH_EXTENT`` bytes)."""
    if not h.alive:
        nbdkit.set_error(errno.ESHUTDOWN)
        raise RuntimeError("the export was closed")
    end = min(h.size, offset + max(count, _BATCH_EXTENT))
    hole = int(nbdkit.EXTENT_HOLE | nbdkit.EXTENT_ZERO)
    found: list[tuple[int, int, int]] = []
    position = offset
    while position < end:
        try:
            data = os.lseek(h.fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            data = end
        data = min(data, end)
        if data > position:
            found.append((position, data - position, hole))
        if data >= end:
            break
        stop = min(os.lseek(h.fd, data, os.SEEK_HOLE), end)
        found.append((data, stop - data, 0))
        position = stop
    return found
