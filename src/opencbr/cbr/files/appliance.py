"""One backup's filesystems, parsed in a libguestfs appliance (a small QEMU VM running the
kernel's own drivers), so a crafted filesystem of another tenant meets a sandbox, not us.

The appliance reads a read-only NBD view of the backup (evs/nbd/sources.py): only the blocks
the filesystems touch are read from the store, decrypted and verified as in a restore. Each
filesystem is mounted on first use at ``/NAME`` (``ro,nodev,nosuid,noexec``).

Escapes: a path is walked one name at a time with ``lstat``; a symbolic link on the way or at
the end is never followed (inside the appliance an absolute link would resolve against the
appliance's own root), and only regular files are read. A regular file's bytes come from the
backup's blocks at the extents the guest reports, each checked (extents.py), or through the
guest when its report does not hold. Directories are archived by tar inside the appliance,
which stores links as links and device files as bare headers.

One call at a time (a handle is not thread-safe). A call that makes no progress for
`stall_seconds` has its appliance killed (`check_stall`, from the session reaper), so a damaged
filesystem that wedges the guest kernel answers an error in bounded time, never a hang.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opencbr.evs.nbd import SourceExport

from ..errors import (
    FileBrowserUnavailable,
    FileNotInBackup,
    FilesystemUnreadable,
    FileTypeRefused,
)
from .binding import GuestfsHandle, new_handle
from .extents import (
    FIEMAP_FSTYPES,
    Extent,
    overlaps,
    parse_filefrag,
    read_extents,
    written_ranges,
)
from .paths import BackupPath, filesystem_name

__all__ = ["Appliance", "Entry", "Filesystem"]

MOUNT_OPTIONS = "ro,nodev,nosuid,noexec"
PIPE_CHUNK = 1 << 20
READAHEAD_SECTORS = 16384
"""8 MiB of readahead: each guest read is a round trip through QEMU, nbdkit and the broker to
the store, so a file streams at a few MB/s with the kernel's default 128 KiB."""
_KINDS = {
    stat.S_IFDIR: "directory",
    stat.S_IFREG: "file",
    stat.S_IFLNK: "symlink",
    stat.S_IFCHR: "character-device",
    stat.S_IFBLK: "block-device",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


@dataclass(frozen=True)
class Filesystem:
    name: str
    device: str
    fstype: str
    size: int
    label: str


@dataclass(frozen=True)
class Entry:
    name: str
    type: str
    size: int
    mode: str
    uid: int
    gid: int
    mtime: str
    target: str | None = None

    @classmethod
    def of(cls, name: str, st: dict[str, int], target: str | None) -> Entry:
        mtime = datetime.fromtimestamp(st["st_mtime_sec"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(
            name=name,
            type=_KINDS.get(stat.S_IFMT(st["st_mode"]), "other"),
            size=st["st_size"],
            mode=f"{stat.S_IMODE(st['st_mode']):04o}",
            uid=st["st_uid"],
            gid=st["st_gid"],
            mtime=mtime,
            target=target,
        )


class Appliance:
    """A launched appliance over one backup's NBD view; `close` ends both."""

    def __init__(self, backup_id: str, export: SourceExport, memory_mib: int) -> None:
        self.backup_id = backup_id
        self._export = export
        self._lock = threading.Lock()
        self._busy_since: float | None = None
        self._killed = False
        self.last_used = time.monotonic()
        self._scratch = tempfile.TemporaryDirectory(prefix="opencbr-files-")
        self._g: GuestfsHandle = new_handle(memory_mib)
        self._overlay = _overlay(export, Path(self._scratch.name))
        self._g.add_drive(self._overlay, format="qcow2")
        with self._call("disk"):
            self._g.launch()
            self._pid = self._g.get_pid()
            self._g.blockdev_setra("/dev/sda", READAHEAD_SECTORS)
            self.partition_table = self._partition_table()
            self._starts = self._partition_starts()
            self.filesystems = self._inventory()
        self._mounted: dict[str, str] = {}  # name -> "" once mounted, else why not

    # ------------------------------------------------------------------ lifetime
    @property
    def busy(self) -> bool:
        return self._busy_since is not None

    @property
    def broken(self) -> bool:
        return self._killed

    def check_stall(self, stall_seconds: float) -> None:
        """Kill the appliance if its running call has made no progress for `stall_seconds`."""
        since = self._busy_since
        if since is not None and time.monotonic() - since > stall_seconds and not self._killed:
            self._killed = True
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._g.close()
        self._export.close()
        self._scratch.cleanup()

    @contextlib.contextmanager
    def _call(self, filesystem: str) -> Iterator[None]:
        """One guarded call: under the lock, watched for stalls, errors made clear."""
        with self._lock:
            if self._killed:
                raise self._unreadable(filesystem, "its reader stopped answering")
            self._busy_since = time.monotonic()
            try:
                yield
            except RuntimeError as exc:
                reason = "it stopped answering" if self._killed else _reason(exc)
                raise self._unreadable(filesystem, reason) from exc
            finally:
                self._busy_since = None
                self.last_used = time.monotonic()

    def _progress(self) -> None:
        if self._busy_since is not None:
            self._busy_since = time.monotonic()

    def _unreadable(self, filesystem: str, reason: str) -> FilesystemUnreadable:
        return FilesystemUnreadable(filesystem=filesystem, backup_id=self.backup_id, reason=reason)

    # ------------------------------------------------------------------ inventory
    def _partition_table(self) -> str:
        try:
            kind = self._g.part_get_parttype("/dev/sda")
        except RuntimeError:
            return "none"
        return {"msdos": "mbr"}.get(kind, kind)

    def _partition_starts(self) -> dict[str, int]:
        """Where each filesystem on the disk begins (a bare disk's at 0); the others (LVM,
        RAID) have no single offset."""
        starts = {filesystem_name("/dev/sda"): 0}
        if self.partition_table != "none":
            for part in self._g.part_list("/dev/sda"):
                starts[filesystem_name(f"/dev/sda{part['part_num']}")] = part["part_start"]
        return starts

    def _inventory(self) -> dict[str, Filesystem]:
        found: dict[str, Filesystem] = {}
        for device, fstype in sorted(self._g.list_filesystems().items()):
            if fstype == "swap":
                continue
            label = ""
            if fstype != "unknown":
                with contextlib.suppress(RuntimeError):
                    label = self._g.vfs_label(device)
            name = filesystem_name(device)
            size = self._g.blockdev_getsize64(device) if device.startswith("/dev/sd") else 0
            found[name] = Filesystem(name, device, fstype, size, label)
            self._g.mkmountpoint(f"/{name}")
        return found

    def _mount(self, name: str) -> None:
        filesystem = self.filesystems[name]
        if name not in self._mounted:
            try:
                self._g.mount_options(MOUNT_OPTIONS, filesystem.device, f"/{name}")
                self._mounted[name] = ""
            except RuntimeError as exc:
                if self._killed:
                    raise
                self._mounted[name] = _reason(exc)
        if self._mounted[name]:
            raise self._unreadable(name, f"it does not mount ({self._mounted[name]})")

    # ------------------------------------------------------------------ reads
    def _resolve(self, path: BackupPath) -> dict[str, int]:
        """`path`'s own lstat, every name above it checked to be a real directory."""
        assert path.filesystem is not None
        if path.filesystem not in self.filesystems:
            raise FileNotInBackup(backup_id=self.backup_id, path=path.text)
        self._mount(path.filesystem)
        current = f"/{path.filesystem}"
        st = self._lstat(current, path)
        for part in path.parts:
            if not stat.S_ISDIR(st["st_mode"]):
                self._refuse_step(current, st)
            current = f"{current}/{part}"
            st = self._lstat(current, path)
        return st

    def _lstat(self, inner: str, path: BackupPath) -> dict[str, int]:
        try:
            return self._g.lstatns(inner)
        except RuntimeError as exc:
            if self._killed:
                raise
            raise FileNotInBackup(backup_id=self.backup_id, path=path.text) from exc

    def _refuse_step(self, inner: str, st: dict[str, int]) -> None:
        if stat.S_ISLNK(st["st_mode"]):
            target = self._g.readlinklist(os.path.dirname(inner), [os.path.basename(inner)])[0]
            raise FileTypeRefused(
                path=inner,
                backup_id=self.backup_id,
                kind=f"a symbolic link to {target}",
                hint="links are not followed; ask for the path it names",
            )
        raise FileTypeRefused(
            path=inner, backup_id=self.backup_id, kind="not a directory", hint="it has no entries"
        )

    def top(self) -> list[Filesystem]:
        return list(self.filesystems.values())

    def list_directory(self, path: BackupPath) -> tuple[str, list[Entry]]:
        """What `path` is, and its entries (a directory's) or itself (anything else)."""
        with self._call(path.filesystem or "disk"):
            st = self._resolve(path)
            kind = _KINDS.get(stat.S_IFMT(st["st_mode"]), "other")
            if not stat.S_ISDIR(st["st_mode"]):
                name = path.parts[-1] if path.parts else ""
                return kind, [Entry.of(name, st, self._link(path, st))]
            inner = path.text
            names = self._g.ls(inner)
            stats = self._g.lstatnslist(inner, names) if names else []
            links = self._g.readlinklist(inner, names) if names else []
        return kind, [
            Entry.of(name, st, links[i] if stat.S_ISLNK(st["st_mode"]) else None)
            for i, (name, st) in enumerate(zip(names, stats, strict=True))
        ]

    def _link(self, path: BackupPath, st: dict[str, int]) -> str | None:
        if not stat.S_ISLNK(st["st_mode"]):
            return None
        return self._g.readlinklist(os.path.dirname(path.text), [path.parts[-1]])[0]

    def file_size(self, path: BackupPath) -> int:
        """The size of the regular file at `path` (anything else refused, links included)."""
        with self._call(path.filesystem or "disk"):
            st = self._resolve(path)
            if not stat.S_ISREG(st["st_mode"]):
                kind = _KINDS.get(stat.S_IFMT(st["st_mode"]), "not a regular file")
                if stat.S_ISLNK(st["st_mode"]):
                    kind = f"a symbolic link to {self._link(path, st)}"
                hint = (
                    "download a directory as an archive"
                    if kind == "directory"
                    else ("only regular files are downloaded")
                )
                raise FileTypeRefused(
                    path=path.text, backup_id=self.backup_id, kind=kind, hint=hint
                )
            return st["st_size"]

    def directory_exists(self, path: BackupPath) -> None:
        with self._call(path.filesystem or "disk"):
            st = self._resolve(path)
            if not stat.S_ISDIR(st["st_mode"]):
                raise FileTypeRefused(
                    path=path.text,
                    backup_id=self.backup_id,
                    kind="not a directory",
                    hint="download a file through files/content",
                )

    def stream_file(self, path: BackupPath, size: int) -> Iterator[bytes]:
        """The `size` bytes of the regular file at `path`: read from the backup's blocks where
        the guest's report of its extents holds (extents.py), else through the guest."""
        extents = self._extents(path, size)
        if extents is not None:
            return self._touching(read_extents(self._export.reader, extents, size))
        return self._stream(path, lambda sink: self._g.download(path.text, sink))

    def _touching(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """`chunks`, keeping the appliance (and so its export) in use while they flow."""
        for chunk in chunks:
            self.last_used = time.monotonic()
            yield chunk

    def _extents(self, path: BackupPath, size: int) -> list[Extent] | None:
        name = path.filesystem or ""
        filesystem, start = self.filesystems.get(name), self._starts.get(name)
        if filesystem is None or start is None or filesystem.fstype not in FIEMAP_FSTYPES:
            return None
        if not 0 <= start <= self._export.size - filesystem.size or not path.text.isprintable():
            return None
        command = "filefrag -v -b1 " + shlex.quote(f"/sysroot{path.text}")
        with self._call(name):
            try:
                report = self._g.debug("sh", [command])
            except RuntimeError:
                if self._killed:
                    raise
                return None
        extents = parse_filefrag(report, size, start, filesystem.size)
        if extents is None or overlaps(extents, written_ranges(self._overlay)):
            return None
        return extents

    def stream_tar(self, path: BackupPath) -> Iterator[bytes]:
        return self._stream(path, lambda sink: self._g.tar_out(path.text, sink, numericowner=True))

    def _stream(self, path: BackupPath, produce: Callable[[str], Any]) -> Iterator[bytes]:
        """What `produce` writes into a pipe, as it comes; the call runs in a thread."""
        read_end, write_end = os.pipe()
        failed: list[BaseException] = []

        def run() -> None:
            try:
                with self._call(path.filesystem or "disk"):
                    produce(f"/dev/fd/{write_end}")
            except BaseException as exc:  # reported by the reading side
                failed.append(exc)
            finally:
                os.close(write_end)

        thread = threading.Thread(target=run, daemon=True, name="file-stream")
        thread.start()
        try:
            while chunk := os.read(read_end, PIPE_CHUNK):
                self._progress()
                yield chunk
        finally:
            os.close(read_end)
            thread.join()
        if failed:
            raise failed[0]


def _overlay(export: SourceExport, scratch: Path) -> str:
    """A local qcow2 overlay over the backup's read-only export: what the guest writes (a
    journal replayed at mount) stays in it. Made here, not by ``add_drive(readonly=True)``:
    that call holds the GIL while qemu-img reads the export, whose broker needs the GIL."""
    overlay = scratch / "overlay.qcow2"
    backing = f"nbd://{export.host}:{export.port}/{export.name}"
    command = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", backing]
    done = subprocess.run(
        [*command, str(overlay)], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise FileBrowserUnavailable(reason=f"qemu-img failed: {done.stderr.strip()[-200:]}")
    return str(overlay)


def _reason(exc: RuntimeError) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]
