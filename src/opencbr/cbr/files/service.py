"""File-level restore: the rules. Browse and download the files inside a disk backup without
restoring it.

Who may: the backup's owner, or a project that accepted it; an encrypted backup also needs
the KMS permission on its key (a grant, for another account), checked at every call exactly
as when making a disk from it (`usable_backup`, so a revoked share or grant stops browsing at
once). Anyone else is answered as for a missing backup (S14). A server backup is browsed
through its disk backups.

The appliance that parses a backup (appliance.py) is kept per (project, backup) and shared
by every call (sessions.py): a recipient's reads go through the recipient's own grant.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session

from opencbr.core.context import Actor, Part, Runtime
from opencbr.core.settings import Settings
from opencbr.evs.nbd import open_source_export
from opencbr.iam.models import Project

from ..backups import children_of
from ..block_source import backup_reader
from ..errors import FileBrowserUnavailable, FilesNeedDiskBackup, FileTypeRefused
from ..models import Backup, ResourceType
from ..restore import usable_backup
from .appliance import Appliance, Entry, Filesystem
from .paths import BackupPath, parse_path
from .sessions import SessionLimits, Sessions

__all__ = [
    "Download",
    "Listing",
    "archive",
    "download",
    "list_files",
    "stop_file_sessions",
]

_SESSIONS: Part[Sessions] = Part("cbr.file_sessions")
_lock = threading.Lock()


@dataclass(frozen=True)
class Listing:
    path: str
    type: str  # "disk" for `/`, else what the path is ("directory", "file", "symlink"...)
    partition_table: str | None
    filesystems: list[Filesystem]
    entries: list[Entry]


@dataclass(frozen=True)
class Download:
    name: str
    size: int | None  # None for an archive: its size is known only at its end
    chunks: Iterator[bytes]


def _sessions(runtime: Runtime) -> Sessions:
    with _lock:
        sessions = runtime.parts.get(_SESSIONS)
        if sessions is None:
            settings = runtime.settings
            limits = SessionLimits(
                limit=settings.file_browsers,
                memory_mib=settings.file_browser_memory_mib,
                idle_seconds=settings.file_browser_idle_seconds,
                stall_seconds=settings.file_browser_stall_seconds,
            )
            sessions = Sessions(limits)
            runtime.parts.set(_SESSIONS, sessions)
        return sessions


def stop_file_sessions(runtime: Runtime) -> None:
    with _lock:
        sessions = runtime.parts.pop(_SESSIONS)
    if sessions is not None:
        sessions.close_all()


@contextmanager
def _reading(runtime: Runtime) -> Iterator[Session]:
    """A read-only unit of work: on SQLite it neither takes nor waits for the write lock, so
    a caller that holds one (a console page) can browse, and a launch holds nothing up."""
    session = runtime.database.read_sessions()
    try:
        yield session
    finally:
        session.close()


def _appliance(runtime: Runtime, actor: Actor, backup_id: str) -> Appliance:
    with _reading(runtime) as session:
        backup = usable_backup(session, runtime, actor, backup_id)
        if backup.resource_type != ResourceType.DISK:
            disks = ", ".join(row.id for row in children_of(session, backup.id)) or "none"
            raise FilesNeedDiskBackup(backup_id=backup.id, disks=disks)
        key = (actor.project_id or "", backup.id)
    _check_plain_nbd(runtime.settings)

    def launch() -> Appliance:
        with _reading(runtime) as session:
            row = session.get(Backup, key[1])
            project = session.get(Project, key[0])
            assert row is not None
            assert project is not None
            source = backup_reader(runtime, session, row, project)
        export = open_source_export(runtime, source.read, source.size)
        try:
            return Appliance(key[1], export, runtime.settings.file_browser_memory_mib)
        except BaseException:
            export.close()
            raise

    return _sessions(runtime).get(key, launch)


def _check_plain_nbd(settings: Settings) -> None:
    """The appliance reads the backup through this process's NBD server as a plain loopback
    client: QEMU's backing-file chain gives it no way to present TLS credentials."""
    if settings.nbd_tls_psk_file or settings.nbd_tls_certificates_dir:
        raise FileBrowserUnavailable(
            reason="its NBD server requires TLS, which the file browser's appliance cannot "
            "present; browse files on a server whose NBD server listens on loopback without TLS"
        )


def list_files(runtime: Runtime, actor: Actor, backup_id: str, raw_path: str) -> Listing:
    """``/``: the disk's filesystems; deeper: a directory's entries (or a file's own)."""
    path = parse_path(raw_path)
    appliance = _appliance(runtime, actor, backup_id)
    if path.filesystem is None:
        return Listing("/", "disk", appliance.partition_table, appliance.top(), [])
    kind, entries = appliance.list_directory(path)
    return Listing(path.text, kind, None, [], entries)


def download(runtime: Runtime, actor: Actor, backup_id: str, raw_path: str) -> Download:
    """A regular file's bytes, streamed; its size is known before the first byte."""
    path = parse_path(raw_path)
    appliance = _appliance(runtime, actor, backup_id)
    if not path.parts:
        raise _whole(path, backup_id, "download a directory as an archive (files/archive)")
    size = appliance.file_size(path)
    return Download(path.parts[-1], size, appliance.stream_file(path, size))


def archive(runtime: Runtime, actor: Actor, backup_id: str, raw_path: str) -> Download:
    """A directory (or a whole filesystem) as a tar stream."""
    path = parse_path(raw_path)
    appliance = _appliance(runtime, actor, backup_id)
    if path.filesystem is None:
        raise _whole(path, backup_id, "archive one filesystem at a time (e.g. /part1)")
    appliance.directory_exists(path)
    name = (path.parts[-1] if path.parts else path.filesystem) + ".tar"
    return Download(name, None, appliance.stream_tar(path))


def _whole(path: BackupPath, backup_id: str, hint: str) -> FileTypeRefused:
    kind = "the list of the disk's filesystems" if path.filesystem is None else "a filesystem"
    return FileTypeRefused(path=path.text, backup_id=backup_id, kind=kind, hint=hint)
