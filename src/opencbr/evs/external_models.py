"""Tables of external disks: where each one lives, and what each of its backups read.

An external disk is an ordinary `Disk` row (so vaults, policies and sharing see an
`OS::Cinder::Volume`) plus an `ExternalDisk` row naming its NBD source. `ExternalRead` keeps,
per backup of such a disk, the bitmap it read, the extents the bitmap marked and whether the
backup read through it or read everything (and why); the next backup compares against it.
Both are written in the transaction that creates the disk or completes the backup.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from opencbr.core.clock import utcnow
from opencbr.core.db import Base

__all__ = ["ExternalDisk", "ExternalRead"]


def _now() -> datetime:
    return utcnow()


class ExternalDisk(Base):
    __tablename__ = "evs_external_disks"

    disk_id: Mapped[str] = mapped_column(
        ForeignKey("evs_disks.id", ondelete="CASCADE"), primary_key=True
    )
    uri: Mapped[str] = mapped_column(String(1024))
    bitmap: Mapped[str] = mapped_column(String(1023), default="")
    tls_psk_file: Mapped[str] = mapped_column(String(1024), default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class ExternalRead(Base):
    """`backup_id` is the backup service's id for the disk backup (opaque here)."""

    __tablename__ = "evs_external_reads"

    backup_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    disk_id: Mapped[str] = mapped_column(String(36), index=True)
    bitmap: Mapped[str] = mapped_column(String(1023), default="")
    bitmap_present: Mapped[bool] = mapped_column(Boolean, default=False)
    mode: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    marked: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)
