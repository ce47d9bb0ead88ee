"""The block source of a disk made from a backup (instant restore): what this slice hands to
the disk service (`evs.instant.BLOCK_SOURCE`) so that reads of blocks not copied yet are
served from the backup, decrypted and verified as in a restore, without the disk service ever
importing this slice or the chunk store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from opencbr.core.context import Actor, Runtime
from opencbr.core.jobs import Permanent
from opencbr.evs.models import Disk
from opencbr.iam.models import Project

from .dataplane import chunk_store, open_scope
from .models import Backup, StoreScope

__all__ = ["BackupBlockSource", "backup_block_source", "backup_reader"]


@dataclass(frozen=True)
class BackupBlockSource:
    """One disk backup's plaintext, read block by block from the store. Its blocks are kept
    from garbage collection by the restore lock of the copy that runs meanwhile."""

    reader: Callable[[int, int], bytes]
    size: int
    block_size: int

    def read(self, offset: int, length: int) -> bytes:
        return self.reader(offset, length)


def backup_block_source(runtime: Runtime, session: Session, disk: Disk) -> BackupBlockSource:
    """The source of `disk`: its backup, opened as the disk's project (a recipient reads a
    shared encrypted backup through its KMS grant, as when it made the disk)."""
    gone = Permanent(f"backup {disk.source_backup_id} was deleted while it was being restored")
    backup = session.get(Backup, disk.source_backup_id) if disk.source_backup_id else None
    if backup is None or not backup.scope_id or not backup.manifest_id:
        raise gone
    scope_row = session.get(StoreScope, backup.scope_id)
    project = session.get(Project, disk.project_id)
    if scope_row is None or project is None:
        raise gone
    return backup_reader(runtime, session, backup, project)


def backup_reader(
    runtime: Runtime, session: Session, backup: Backup, project: Project
) -> BackupBlockSource:
    """`backup`'s plaintext as `project` reads it (its own, or through its KMS grant)."""
    scope_row = session.get(StoreScope, backup.scope_id or "")
    if scope_row is None or not backup.manifest_id:
        raise Permanent(f"backup {backup.id} has no stored data")
    actor = Actor(project.domain_id, "", project.id, project.region)
    scope = open_scope(session, runtime, actor, scope_row)
    store = chunk_store(runtime)
    manifest = store.load_manifest(backup.manifest_id)
    reader = store.range_reader(scope, backup.manifest_id)
    return BackupBlockSource(reader, manifest.disk_size, manifest.block_size)
