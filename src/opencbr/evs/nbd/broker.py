"""The broker: the OpenCBR side of the NBD data path, in the process that owns the volumes.

nbdkit's plugin (nbdkit_plugin.py) connects to the broker's unix socket (private to the
service's user: mode 0600 in a 0700 directory) and speaks wire.py. The broker resolves an
export name in the database at each NBD connection, opens the disk's volume through the
volume layer (unwrapping an encrypted disk's key through KMS as its owner) and carries out
reads, writes, zeroing and flushes on it, so that encryption, the change map and a running
backup's copy-on-write all see what a VM writes. A disk from a backup whose copy still runs
is served through its filling (instant restore, evs/instant.py): blocks not copied yet are read
from the backup. A source export (`add_source`, sources.py) has no record: a read-only view
of a block source held in this broker's memory until it is removed.

An export dies when its record goes (from any process): a watcher compares the live handles'
exports with the database every `WATCH_SECONDS` and ends the handles of the missing ones;
their plugin handles then refuse every request.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from opencbr.core.context import Runtime
from opencbr.core.errors import AppError

from .. import instant
from ..errors import DiskRangeInvalid
from ..models import NbdExport
from ..service import DiskVolume, GiB, stored_volume, volume_driver
from ..volumes import RangeError
from ..volumes.filling import FillingBusy
from . import lookup, wire

__all__ = ["WATCH_SECONDS", "Broker", "ExportData"]

WATCH_SECONDS = 1.0
log = logging.getLogger(__name__)


class _Refused(Exception):
    def __init__(self, err: int) -> None:
        super().__init__(os.strerror(err))
        self.errno = err


class ExportData(Protocol):
    """What an export reads and writes: a disk's volume, or its filling during a copy."""

    def read(self, offset: int, length: int) -> bytes: ...

    def write(self, offset: int, data: bytes) -> None: ...

    def write_zeroes(self, offset: int, length: int) -> None: ...

    def flush(self) -> None: ...


@dataclass(frozen=True)
class _Volume:
    volume: DiskVolume

    def read(self, offset: int, length: int) -> bytes:
        return b"".join(self.volume.read(offset, length))

    def write(self, offset: int, data: bytes) -> None:
        self.volume.write(offset, data)

    def write_zeroes(self, offset: int, length: int) -> None:
        self.volume.write_zeroes(offset, length)

    def flush(self) -> None:
        self.volume.flush()


@dataclass(frozen=True)
class _ReadOnly:
    """A source export's data: reads only (the handle is read-only, so nothing else comes)."""

    reader: Callable[[int, int], bytes]

    def read(self, offset: int, length: int) -> bytes:
        return self.reader(offset, length)

    def write(self, offset: int, data: bytes) -> None:
        raise _Refused(errno.EROFS)

    def write_zeroes(self, offset: int, length: int) -> None:
        raise _Refused(errno.EROFS)

    def flush(self) -> None:
        return None


@dataclass(frozen=True)
class _Source:
    """An export with no record: a read-only view that lives in this broker's memory."""

    data: _ReadOnly
    size: int


SOURCE_PREFIX = "source:"
"""Marks a live handle of a source export (its export id is this plus the export name)."""


@dataclass
class _Live:
    """One NBD connection's open export."""

    export_id: str
    data: ExportData
    read_only: bool
    dead: threading.Event = field(default_factory=threading.Event)


class Broker:
    """Serves the plugin's control connections; `start` then `stop`."""

    def __init__(self, runtime: Runtime, directory: Path) -> None:
        self.runtime = runtime
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory.chmod(0o700)
        self.path = directory / f"broker-{os.getpid()}-{id(self):x}.sock"
        self.path.unlink(missing_ok=True)
        self._lock = threading.Lock()
        self._live: dict[int, _Live] = {}
        self._sources: dict[str, _Source] = {}
        self._next = 1
        self._stopped = threading.Event()
        broker = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                broker.serve_connection(self.request)

        class Server(socketserver.ThreadingUnixStreamServer):
            daemon_threads = True

        old_mask = os.umask(0o177)
        try:
            self._server = Server(str(self.path), Handler)
        finally:
            os.umask(old_mask)
        self._threads = [
            threading.Thread(target=self._server.serve_forever, daemon=True, name="nbd-broker"),
            threading.Thread(target=self._watch_exports, daemon=True, name="nbd-watch"),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for live in self._live.values():
                live.dead.set()
        self.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ source exports
    def add_source(self, name: str, reader: Callable[[int, int], bytes], size: int) -> None:
        """Serve `reader` read-only as export `name` (a secret) until `remove_source`: a view
        with no disk record, e.g. a backup's blocks read straight from the store."""
        with self._lock:
            self._sources[name] = _Source(_ReadOnly(reader), size)

    def remove_source(self, name: str) -> None:
        """End the source export `name`; its open handles refuse every request from now."""
        with self._lock:
            self._sources.pop(name, None)
            for handle, live in list(self._live.items()):
                if live.export_id == SOURCE_PREFIX + name:
                    live.dead.set()
                    del self._live[handle]

    def _open_source(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            source = self._sources.get(name)
            if source is None:
                return None
            handle, self._next = self._next, self._next + 1
            self._live[handle] = _Live(SOURCE_PREFIX + name, source.data, True)
        return {
            "handle": handle,
            "size": source.size,
            "read_only": True,
            "image": "",
            "direct_reads": False,
            "extents": False,
        }

    # ------------------------------------------------------------------ connections
    def serve_connection(self, sock: socket.socket) -> None:
        """Requests of one control connection, one at a time, until it closes."""
        try:
            while True:
                header = wire.recv_exact(sock, wire.REQUEST.size)
                op, handle, offset, length = wire.REQUEST.unpack(header)
                payload = wire.recv_exact(sock, length) if op in (wire.OPEN, wire.WRITE) else b""
                if op == wire.WATCH:
                    self._wait_dead(handle)
                    sock.sendall(wire.REPLY.pack(errno.ESHUTDOWN, 0))
                    return
                err, answer = self._answer(op, handle, offset, length, payload)
                sock.sendall(wire.REPLY.pack(err, len(answer)))
                if answer:
                    sock.sendall(answer)
        except (ConnectionError, OSError):
            return

    def _answer(
        self, op: int, handle: int, offset: int, length: int, payload: bytes
    ) -> tuple[int, bytes]:
        try:
            if op == wire.OPEN:
                return 0, wire.encode_json(self._open(wire.decode_json(payload)))
            if op == wire.CLOSE:
                with self._lock:
                    closed = self._live.pop(handle, None)
                if closed is not None:
                    closed.dead.set()  # ends its WATCH
                return 0, b""
            return 0, self._data(self._handle(handle), op, offset, length, payload)
        except _Refused as exc:
            return exc.errno, b""
        except (DiskRangeInvalid, RangeError):
            return errno.EINVAL, b""
        except FillingBusy:  # the copy runs in another process: served when it ends
            return errno.EBUSY, b""
        except (AppError, ValueError, KeyError) as exc:
            log.warning("NBD request refused: %s", exc)
            return errno.EIO, b""
        except Exception:
            log.exception("NBD request failed")
            return errno.EIO, b""

    def _handle(self, handle: int) -> _Live:
        with self._lock:
            live = self._live.get(handle)
        if live is None or live.dead.is_set():
            raise _Refused(errno.ESHUTDOWN)
        return live

    @staticmethod
    def _data(live: _Live, op: int, offset: int, length: int, payload: bytes) -> bytes:
        if op == wire.READ:
            return live.data.read(offset, length)
        if op == wire.FLUSH:
            live.data.flush()
            return b""
        if live.read_only:
            raise _Refused(errno.EROFS)
        if op == wire.WRITE:
            live.data.write(offset, payload)
        elif op == wire.ZERO:
            live.data.write_zeroes(offset, length)
        else:
            raise _Refused(errno.EINVAL)
        return b""

    def _open(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request["name"])
        source = self._open_source(name)
        if source is not None:
            return source
        with self.runtime.database.unit_of_work() as session:
            found = lookup.find_by_name(session, name)
            if found is None:
                raise _Refused(errno.ENOENT)
            export, disk = found
            filling = instant.is_filling(disk)
            if filling and not instant.takes_filling(self.runtime, disk.id):
                raise _Refused(errno.EBUSY)  # the copy runs elsewhere: served once it ends
            volume = stored_volume(self.runtime, session, disk) if not filling else None
            data: ExportData = (
                _Volume(volume)
                if volume is not None
                else instant.filling_volume(self.runtime, session, disk)
            )
            export_id, read_only = export.id, export.read_only or bool(request["readonly"])
            direct = not (disk.encrypted or filling)
            size, disk_id = disk.size_gb * GiB, disk.id
        with self._lock:
            handle, self._next = self._next, self._next + 1
            self._live[handle] = _Live(export_id, data, read_only)
        image = volume_driver(self.runtime).root / f"{disk_id}.img"
        return {
            "handle": handle,
            "size": size,
            "read_only": read_only,
            "image": str(image),
            "direct_reads": direct,
            "extents": not filling,  # the image's holes say nothing before the copy ends
        }

    # ------------------------------------------------------------------ export lifetime
    def _wait_dead(self, handle: int) -> None:
        with self._lock:
            live = self._live.get(handle)
        if live is not None:
            live.dead.wait()

    def _watch_exports(self) -> None:
        while not self._stopped.wait(WATCH_SECONDS):
            try:
                self._end_closed_exports()
            except Exception:
                log.exception("checking the NBD exports failed")

    def _end_closed_exports(self) -> None:
        with self._lock:
            wanted = {
                live.export_id
                for live in self._live.values()
                if not live.export_id.startswith(SOURCE_PREFIX)
            }
        if not wanted:
            return
        with self.runtime.database.unit_of_work() as session:
            query = select(NbdExport.id).where(NbdExport.id.in_(wanted))
            still = set(session.scalars(query))
        with self._lock:
            for handle, live in list(self._live.items()):
                if live.export_id not in still and not live.export_id.startswith(SOURCE_PREFIX):
                    live.dead.set()
                    del self._live[handle]
