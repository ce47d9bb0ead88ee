"""The libnbd binding, loaded from Debian's ``python3-libnbd`` and typed for what we use.

libnbd's only Python binding is the one Debian builds for its system CPython 3.11; there is
none on PyPI. The project's interpreter is also 3.11, so the binding imports once
``/usr/lib/python3/dist-packages`` is on ``sys.path`` — appended (never prepended) and only
here, when an NBD source is first used, so no other import can pick up a system package.

The `NbdHandle` protocol lists the handle calls this project makes; the binding has no stubs.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Protocol, cast

from opencbr.core.errors import AppError

__all__ = [
    "BASE_ALLOCATION",
    "STATE_DIRTY",
    "STATE_ZERO",
    "LibnbdMissing",
    "NbdBuffer",
    "NbdHandle",
    "NbdModule",
    "load",
]

DEBIAN_DIST_PACKAGES = "/usr/lib/python3/dist-packages"
BASE_ALLOCATION = "base:allocation"
STATE_ZERO = 2
"""base:allocation flag: the extent reads as zeros."""
STATE_DIRTY = 1
"""qemu:dirty-bitmap:NAME flag: the extent is marked in the bitmap."""

BlockStatusCallback = Callable[[str, int, list[int], object], int]
"""(context, offset, flat [length, flags, ...] entries, error cell) -> 0."""


class LibnbdMissing(AppError):
    status = 501
    code = "EVS.0430"
    template = (
        "NBD sources need libnbd's Python binding: install the Debian package python3-libnbd "
        "({reason})."
    )


class NbdBuffer(Protocol):
    """``nbd.Buffer``: memory libnbd reads into or writes from during an asynchronous command."""

    def to_buffer(self) -> bytearray: ...  # shared with the buffer, not a copy


class NbdBufferType(Protocol):
    def __call__(self, length: int) -> NbdBuffer: ...
    def from_bytearray(self, data: bytearray) -> NbdBuffer: ...


class NbdHandle(Protocol):
    """The part of ``nbd.NBD`` this project uses."""

    def add_meta_context(self, name: str) -> None: ...
    def set_export_name(self, name: str) -> None: ...
    def set_tls_psk_file(self, path: str) -> None: ...
    def connect_uri(self, uri: str) -> None: ...
    def aio_connect_uri(self, uri: str) -> None: ...
    def aio_is_ready(self) -> bool: ...
    def aio_is_dead(self) -> bool: ...
    def aio_is_closed(self) -> bool: ...
    def poll(self, timeout: int) -> int: ...
    def get_size(self) -> int: ...
    def can_meta_context(self, name: str) -> bool: ...
    def block_status(self, count: int, offset: int, extent: BlockStatusCallback) -> None: ...
    def pread(self, count: int, offset: int) -> bytes: ...
    def pwrite(self, buf: bytes, offset: int) -> None: ...
    def zero(self, count: int, offset: int) -> None: ...
    def trim(self, count: int, offset: int) -> None: ...
    def can_zero(self) -> bool: ...
    def can_trim(self) -> bool: ...
    def can_flush(self) -> bool: ...
    def flush(self) -> None: ...
    def is_read_only(self) -> bool: ...
    def shutdown(self) -> None: ...
    def aio_pread(self, buf: NbdBuffer, offset: int) -> int: ...
    def aio_pwrite(self, buf: NbdBuffer, offset: int) -> int: ...
    def aio_block_status(self, count: int, offset: int, extent: BlockStatusCallback) -> int: ...
    def aio_zero(self, count: int, offset: int) -> int: ...
    def aio_flush(self) -> int: ...
    def aio_command_completed(self, cookie: int) -> bool: ...
    def aio_get_fd(self) -> int: ...


class NbdModule(Protocol):
    """The part of the ``nbd`` module this project uses."""

    Error: type[Exception]
    Buffer: NbdBufferType

    def NBD(self) -> NbdHandle: ...  # noqa: N802 - the binding's name


_lock = threading.Lock()


def load() -> NbdModule:
    """The ``nbd`` module, or `LibnbdMissing` naming the Debian package to install."""
    with _lock:
        loaded = sys.modules.get("nbd")
        if loaded is None:
            if DEBIAN_DIST_PACKAGES not in sys.path:
                sys.path.append(DEBIAN_DIST_PACKAGES)
            try:
                loaded = importlib.import_module("nbd")
            except ImportError as exc:
                raise LibnbdMissing(reason=str(exc)) from exc
        assert isinstance(loaded, ModuleType)
        return cast(NbdModule, loaded)
