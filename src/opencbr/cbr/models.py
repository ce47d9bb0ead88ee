"""CBR tables: vaults and their resources, checkpoints, backups, share members, policies, logs.

Capacity: `Vault.used_bytes` is a counter maintained in the same transaction as every change
that adds or frees space, with conditional updates (`... WHERE size - used >= :n`), so two
concurrent requests can never overfill a vault. A vault's own backups count the bytes they
added to the store; an accepted shared backup counts its full size (S7).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from opencbr.core.clock import utcnow
from opencbr.core.db import Base

__all__ = [
    "Backup",
    "BackupRecord",
    "BackupStatus",
    "Checkpoint",
    "Member",
    "MemberStatus",
    "OperationLog",
    "Policy",
    "ResourceType",
    "StoreScope",
    "Vault",
    "VaultResource",
    "VaultStatus",
]

GiB = 1024**3


class ResourceType(StrEnum):
    SERVER = "OS::Nova::Server"
    DISK = "OS::Cinder::Volume"


class VaultStatus(StrEnum):
    AVAILABLE = "available"
    LOCK = "lock"
    FROZEN = "frozen"
    DELETING = "deleting"
    ERROR = "error"


class BackupStatus(StrEnum):
    AVAILABLE = "available"
    PROTECTING = "protecting"
    DELETING = "deleting"
    RESTORING = "restoring"
    ERROR = "error"
    WAITING_PROTECT = "waiting_protect"
    WAITING_DELETE = "waiting_delete"
    WAITING_RESTORE = "waiting_restore"


class MemberStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


def _now() -> datetime:
    return utcnow()


class Vault(Base):
    __tablename__ = "cbr_vaults"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("iam_projects.id"), index=True)
    region: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64), index=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    object_type: Mapped[str] = mapped_column(String(16))
    protect_type: Mapped[str] = mapped_column(String(16), default="backup")
    consistent_level: Mapped[str] = mapped_column(String(32), default="crash_consistent")
    charging_mode: Mapped[str] = mapped_column(String(16), default="post_paid")
    size_gb: Mapped[int] = mapped_column(Integer)
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default=VaultStatus.AVAILABLE)
    auto_bind: Mapped[bool] = mapped_column(Boolean, default=False)
    bind_rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    auto_expand: Mapped[bool] = mapped_column(Boolean, default=False)
    smn_notify: Mapped[bool] = mapped_column(Boolean, default=True)
    threshold: Mapped[int] = mapped_column(Integer, default=80)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    tags: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    policy_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    enterprise_project_id: Mapped[str] = mapped_column(String(64), default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)

    @property
    def size_bytes(self) -> int:
        return self.size_gb * GiB


class VaultResource(Base):
    """A resource protected by a vault; a resource lives in one vault only (unique id)."""

    __tablename__ = "cbr_vault_resources"

    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    vault_id: Mapped[str] = mapped_column(ForeignKey("cbr_vaults.id"), index=True)
    resource_type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255), default="")
    extra_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    auto_protect: Mapped[bool] = mapped_column(Boolean, default=False)
    # Left out of the vault's policy backups (SetVaultResource `suspend`); manual ones take it.
    suspended: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class Checkpoint(Base):
    __tablename__ = "cbr_checkpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    vault_id: Mapped[str] = mapped_column(ForeignKey("cbr_vaults.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16), default="protecting")
    incremental: Mapped[bool] = mapped_column(Boolean, default=True)
    auto_trigger: Mapped[bool] = mapped_column(Boolean, default=False)
    policy_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    retention_days: Mapped[int] = mapped_column(Integer, default=-1)
    skipped: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class StoreScope(Base):
    """A deduplication scope of the chunk store: one a region (plain) or one a KMS key.

    The scope's data key is kept wrapped: by the KMS key for encrypted scopes, by the server
    root key for plain ones. Its block-id key is derived from it.
    """

    __tablename__ = "cbr_store_scopes"
    __table_args__ = (UniqueConstraint("region", "kms_key_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    region: Mapped[str] = mapped_column(String(64))
    kms_key_id: Mapped[str] = mapped_column(String(36), default="")
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class Backup(Base):
    __tablename__ = "cbr_backups"
    # A project's backups newest first (its listing's order): a short walk of this index, not
    # a walk of every project's backups by date.
    __table_args__ = (Index("ix_cbr_backups_project_id_created_at", "project_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("iam_projects.id"))
    region: Mapped[str] = mapped_column(String(64), index=True)
    vault_id: Mapped[str] = mapped_column(ForeignKey("cbr_vaults.id"), index=True)
    checkpoint_id: Mapped[str] = mapped_column(String(36), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(24), default=BackupStatus.PROTECTING, index=True)
    resource_id: Mapped[str] = mapped_column(String(36), index=True)
    resource_name: Mapped[str] = mapped_column(String(255), default="")
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_az: Mapped[str] = mapped_column(String(64), default="")
    resource_size_gb: Mapped[int] = mapped_column(Integer, default=0)
    bootable: Mapped[bool] = mapped_column(Boolean, default=False)
    device: Mapped[str] = mapped_column(String(64), default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    incremental: Mapped[bool] = mapped_column(Boolean, default=False)
    base_backup_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    kms_key_id: Mapped[str] = mapped_column(String(36), default="")
    scope_id: Mapped[str | None] = mapped_column(ForeignKey("cbr_store_scopes.id"), nullable=True)
    manifest_id: Mapped[str] = mapped_column(String(128), default="")
    auto_trigger: Mapped[bool] = mapped_column(Boolean, default=False)
    policy_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    error_message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=_now, onupdate=_now)
    protected_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    expired_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class BackupRecord(Protocol):
    """What a backup's views read: a `Backup`, or a row of its table's columns. Listings and
    ShowBackup read rows (see `backups._as_record`): making ORM objects of them, which nothing
    changes, took a fifth of the CPU of a page of 50 backups."""

    id: str
    project_id: str
    vault_id: str
    checkpoint_id: str
    parent_id: str | None
    name: str
    description: str
    status: str
    resource_id: str
    resource_name: str
    resource_type: str
    resource_az: str
    resource_size_gb: int
    bootable: bool
    size_bytes: int
    stored_bytes: int
    incremental: bool
    encrypted: bool
    kms_key_id: str
    auto_trigger: bool
    created_at: datetime
    updated_at: datetime
    protected_at: datetime | None
    expired_at: datetime | None


class Member(Base):
    """One share of one backup with one destination project (S1-S9)."""

    __tablename__ = "cbr_members"
    __table_args__ = (
        UniqueConstraint("backup_id", "dest_project_id"),
        # A recipient's shares in the order of its listing of them (newest backup first).
        Index(
            "ix_cbr_members_dest_project_id_backup_created_at",
            "dest_project_id",
            "backup_created_at",
            "backup_id",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    backup_id: Mapped[str] = mapped_column(ForeignKey("cbr_backups.id"), index=True)
    dest_project_id: Mapped[str] = mapped_column(ForeignKey("iam_projects.id"))
    # The backup's `created_at`, which never changes: a recipient's listing walks its members
    # in the backups' order instead of every backup of the region (see `backups._side`).
    backup_created_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16), default=MemberStatus.PENDING, index=True)
    vault_id: Mapped[str | None] = mapped_column(
        ForeignKey("cbr_vaults.id"), nullable=True, index=True
    )
    image_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    reserved_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=_now, onupdate=_now)


class Policy(Base):
    __tablename__ = "cbr_policies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("iam_projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    operation_type: Mapped[str] = mapped_column(String(16), default="backup")
    operation_definition: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    patterns: Mapped[list[str]] = mapped_column(JSON, default=list)
    start_window_minutes: Mapped[int] = mapped_column(Integer, default=60)
    trigger_id: Mapped[str] = mapped_column(String(36))
    last_fired_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class OperationLog(Base):
    __tablename__ = "cbr_operation_logs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    operation_type: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    provider_id: Mapped[str] = mapped_column(String(36), default="")
    vault_id: Mapped[str] = mapped_column(String(36), default="", index=True)
    vault_name: Mapped[str] = mapped_column(String(64), default="")
    checkpoint_id: Mapped[str] = mapped_column(String(36), default="")
    policy_id: Mapped[str] = mapped_column(String(36), default="")
    job_id: Mapped[str] = mapped_column(String(36), default="", index=True)
    resource_id: Mapped[str] = mapped_column(String(36), default="", index=True)
    resource_name: Mapped[str] = mapped_column(String(255), default="")
    resource_type: Mapped[str] = mapped_column(String(32), default="")
    error_code: Mapped[str] = mapped_column(String(64), default="")
    error_message: Mapped[str] = mapped_column(Text, default="")
    extra_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=_now, onupdate=_now)
