"""The libguestfs binding, loaded from Debian's ``python3-guestfs`` and typed for what we use.

libguestfs's Python binding is Debian's only (none on PyPI), built for the system CPython
3.11, which is also the project's interpreter: it imports once ``/usr/lib/python3/dist-packages``
is appended to ``sys.path`` (never prepended, and only here, on first use), as libnbd's does
(evs/volumes/libnbd.py). The binding is used in-process rather than by driving ``guestfish
--remote``: the same appliance, no text protocol to parse, and a file's bytes stream from the
appliance into a pipe we read (``download`` to ``/dev/fd/N``) with no copy through a shell.

The appliance is QEMU. Where KVM is usable it runs under KVM; where ``/dev/kvm`` exists but
QEMU cannot use it (some nested hosts fail setting MSRs) it must run under TCG, else every
launch fails after seconds. `kvm_usable` asks QEMU once per process (0.1 s).
"""

from __future__ import annotations

import glob
import importlib
import shutil
import subprocess
import sys
import threading
from types import ModuleType
from typing import Any, Protocol, cast

from ..errors import FileBrowserUnavailable

__all__ = ["GuestfsHandle", "kvm_usable", "new_handle"]

DEBIAN_DIST_PACKAGES = "/usr/lib/python3/dist-packages"
KERNELS = "/boot/vmlinuz-*"
_lock = threading.Lock()
_module: ModuleType | None = None
_kvm: bool | None = None


class GuestfsHandle(Protocol):
    """The part of ``guestfs.GuestFS`` this project uses."""

    def set_memsize(self, mib: int) -> None: ...
    def set_backend_settings(self, settings: list[str]) -> None: ...
    def add_drive(self, filename: str, **options: Any) -> None: ...
    def launch(self) -> None: ...
    def get_pid(self) -> int: ...
    def list_filesystems(self) -> dict[str, str]: ...
    def part_get_parttype(self, device: str) -> str: ...
    def part_list(self, device: str) -> list[dict[str, int]]: ...
    def debug(self, subcmd: str, extraargs: list[str]) -> str: ...
    def blockdev_getsize64(self, device: str) -> int: ...
    def blockdev_setra(self, device: str, sectors: int) -> None: ...
    def vfs_label(self, mountable: str) -> str: ...
    def mkmountpoint(self, path: str) -> None: ...
    def mount_options(self, options: str, mountable: str, mountpoint: str) -> None: ...
    def lstatns(self, path: str) -> dict[str, int]: ...
    def ls(self, directory: str) -> list[str]: ...
    def lstatnslist(self, path: str, names: list[str]) -> list[dict[str, int]]: ...
    def readlinklist(self, path: str, names: list[str]) -> list[str]: ...
    def download(self, remotefilename: str, filename: str) -> None: ...
    def tar_out(self, directory: str, tarfile: str, **options: Any) -> None: ...
    def close(self) -> None: ...


def _load() -> ModuleType:
    global _module
    with _lock:
        if _module is None:
            if DEBIAN_DIST_PACKAGES not in sys.path:
                sys.path.append(DEBIAN_DIST_PACKAGES)
            try:
                _module = importlib.import_module("guestfs")
            except ImportError as exc:
                reason = f"{FileBrowserUnavailable.INSTALL} (python3-guestfs is missing: {exc})"
                raise FileBrowserUnavailable(reason=reason) from exc
        return _module


def kvm_usable() -> bool:
    """Whether QEMU can start a KVM guest here (asked once per process)."""
    global _kvm
    with _lock:
        if _kvm is None:
            _kvm = _probe_kvm()
        return _kvm


def _probe_kvm() -> bool:
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return False
    command = [qemu, "-accel", "kvm", "-cpu", "host", "-machine", "pc", "-nodefaults"]
    command += ["-display", "none", "-monitor", "none", "-serial", "none", "-S"]
    try:
        # A usable KVM starts and waits (-S) until the timeout; an unusable one fails at once.
        subprocess.run(command, capture_output=True, timeout=2, check=False)
    except subprocess.TimeoutExpired:
        return True
    return False


def new_handle(memory_mib: int) -> GuestfsHandle:
    """A handle whose appliance gets `memory_mib` of RAM, under TCG where KVM is unusable."""
    module = _load()
    if not glob.glob(KERNELS):
        reason = f"{FileBrowserUnavailable.INSTALL} (no kernel for the appliance in /boot)"
        raise FileBrowserUnavailable(reason=reason)
    handle = cast(GuestfsHandle, module.GuestFS(python_return_dict=True, close_on_exit=True))
    handle.set_memsize(memory_mib)
    if not kvm_usable():
        handle.set_backend_settings(["force_tcg"])
    return handle
