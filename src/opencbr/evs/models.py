"""EVS tables: disks (block volumes), servers (compute instance records owning disks) and the
NBD exports of disks."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from opencbr.core.clock import utcnow
from opencbr.core.db import Base

__all__ = [
    "Disk",
    "DiskStatus",
    "DiskTransfer",
    "NbdExport",
    "NbdServerRecord",
    "RecyclePolicy",
    "Server",
    "ServerStatus",
    "Snapshot",
    "SnapshotStatus",
]


class DiskStatus(StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    IN_USE = "in-use"
    ATTACHING = "attaching"
    DETACHING = "detaching"
    BACKING_UP = "backing-up"
    RESTORING_BACKUP = "restoring-backup"
    ERROR = "error"
    ERROR_RESTORING = "error_restoring"
    DELETING = "deleting"
    ERROR_DELETING = "error_deleting"
    AWAITING_TRANSFER = "awaiting-transfer"  # offered to another project (transfers.py)
    EXTENDING = "extending"  # growing (resize.py)
    ROLLBACKING = "rollbacking"  # taking a snapshot's contents back (snapshots.py)
    RECYCLED = "recycled"  # deleted into the recycle bin (recycle.py): hidden, restorable


class ServerStatus(StrEnum):
    BUILD = "BUILD"
    ACTIVE = "ACTIVE"
    SHUTOFF = "SHUTOFF"
    ERROR = "ERROR"
    DELETED = "DELETED"


def _now() -> datetime:
    return utcnow()


class Disk(Base):
    """A block volume. `cbt_base` names the backup its change map is relative to ("" = none)."""

    __tablename__ = "evs_disks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("iam_projects.id"), index=True)
    region: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(32), default="")
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    size_gb: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(24), default=DiskStatus.CREATING, index=True)
    availability_zone: Mapped[str] = mapped_column(String(64), default="az1")
    volume_type: Mapped[str] = mapped_column(String(16), default="SAS")
    bootable: Mapped[bool] = mapped_column(Boolean, default=False)
    multiattach: Mapped[bool] = mapped_column(Boolean, default=False)
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    kms_key_id: Mapped[str] = mapped_column(String(36), default="")
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    server_id: Mapped[str | None] = mapped_column(
        ForeignKey("evs_servers.id"), nullable=True, index=True
    )
    device: Mapped[str] = mapped_column(String(32), default="")
    source_backup_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    cbt_base: Mapped[str] = mapped_column(String(64), default="")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    error_message: Mapped[str] = mapped_column(Text, default="")
    recycled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    purge_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=_now, onupdate=_now)


class RecyclePolicy(Base):
    """A project's disk recycle bin policy (EVS `recycle-bin-volumes/policy`); no row: off."""

    __tablename__ = "evs_recycle_policies"

    project_id: Mapped[str] = mapped_column(ForeignKey("iam_projects.id"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    threshold_days: Mapped[int] = mapped_column(Integer, default=7)
    keep_days: Mapped[int] = mapped_column(Integer, default=7)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=_now, onupdate=_now)


class Server(Base):
    __tablename__ = "evs_servers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("iam_projects.id"), index=True)
    region: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=ServerStatus.ACTIVE, index=True)
    availability_zone: Mapped[str] = mapped_column(String(64), default="az1")
    flavor: Mapped[str] = mapped_column(String(64), default="s1.small")
    source_backup_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=_now, onupdate=_now)


class DiskTransfer(Base):
    """A disk offered by its project to whichever project presents the auth key (shown once,
    stored as its SHA-256). One per disk; it goes when accepted or withdrawn."""

    __tablename__ = "evs_transfers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(
        ForeignKey("evs_disks.id", ondelete="CASCADE"), unique=True
    )
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    auth_key_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class NbdExport(Base):
    """An open NBD export of a disk (at most one per disk).

    The row is the export: any process's NBD broker resolves a client's export name here, and
    deleting the row ends the export everywhere. `name` is a random secret that only the disk's
    project is told; `address` is the host:port of the NBD server that the URI names, `tls`
    the TLS that server requires (`nbd.tls.TLS_*`: "" none, "psk", "x509").
    """

    __tablename__ = "evs_nbd_exports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    disk_id: Mapped[str] = mapped_column(ForeignKey("evs_disks.id"), unique=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("iam_projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    read_only: Mapped[bool] = mapped_column(Boolean)
    address: Mapped[str] = mapped_column(String(255))
    tls: Mapped[str] = mapped_column(String(8), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class NbdServerRecord(Base):
    """A running NBD server of the deployment (nbd.registry): where clients reach it and the
    TLS it requires. Its process refreshes `seen_at`; API processes without an NBD server of
    their own name a live one in the exports they open."""

    __tablename__ = "evs_nbd_servers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    address: Mapped[str] = mapped_column(String(255))
    tls: Mapped[str] = mapped_column(String(8), default="")
    seen_at: Mapped[datetime] = mapped_column(DateTime, default=_now, index=True)


class SnapshotStatus(StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    ROLLBACKING = "rollbacking"
    DELETING = "deleting"
    ERROR = "error"


class Snapshot(Base):
    """A point-in-time copy of a disk (EVS v2 `cloudsnapshots`; bytes in volumes/snapshots.py).
    A disk with snapshots cannot be deleted (as EVS)."""

    __tablename__ = "evs_snapshots"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("iam_projects.id"), index=True)
    volume_id: Mapped[str] = mapped_column(ForeignKey("evs_disks.id"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    size_gb: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=SnapshotStatus.CREATING)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    error_message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=_now, onupdate=_now)


from .external_models import ExternalDisk, ExternalRead  # noqa: E402  (registers the tables)

__all__ += ["ExternalDisk", "ExternalRead"]
