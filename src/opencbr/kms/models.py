"""KMS tables: customer master keys (material sealed by the root key) and their grants."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from opencbr.core.clock import utcnow
from opencbr.core.db import Base

__all__ = ["Grant", "GranteeType", "Key", "KeyAlias", "KeyMaterial", "KeyRotation", "KeyState"]


class KeyState(StrEnum):
    """The wire's `key_state` codes."""

    PENDING_ACTIVATION = "1"
    ENABLED = "2"
    DISABLED = "3"
    PENDING_DELETION = "4"
    PENDING_IMPORT = "5"

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")


class GranteeType(StrEnum):
    USER = "user"
    DOMAIN = "domain"


class Key(Base):
    """A customer master key of one project (so of one domain and one region).

    `material_sealed` is the 256-bit key sealed by the server root key with the purpose
    `kms.key-material:<id>`, so sealed material cannot be moved to another key's row.
    """

    __tablename__ = "kms_keys"
    __table_args__ = (UniqueConstraint("project_id", "alias"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    domain_id: Mapped[str] = mapped_column(ForeignKey("iam_domains.id"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("iam_projects.id"), index=True)
    region: Mapped[str] = mapped_column(String(64), index=True)
    alias: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(255), default="")
    key_spec: Mapped[str] = mapped_column(String(16), default="AES_256")
    key_usage: Mapped[str] = mapped_column(String(32), default="ENCRYPT_DECRYPT")
    state: Mapped[str] = mapped_column(String(1), default=KeyState.ENABLED)
    default_key: Mapped[bool] = mapped_column(Boolean, default=False)
    material_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    deletion_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # The owner's `key: value` labels (key_tags.py); None for a key never tagged.
    tags: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True, default=dict)


class Grant(Base):
    """Lets a domain or a user use a key for the listed operations (comma-separated)."""

    __tablename__ = "kms_grants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("kms_keys.id"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    grantee_type: Mapped[str] = mapped_column(String(8))
    grantee_principal: Mapped[str] = mapped_column(String(64), index=True)
    operations: Mapped[str] = mapped_column(String(512))
    issuing_principal: Mapped[str] = mapped_column(String(64))
    retiring_principal: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def operation_list(self) -> list[str]:
        return self.operations.split(",") if self.operations else []


class KeyAlias(Base):
    """An alias (`alias/...`) naming one key; unique in its account and region. Deleted with
    its key (the database cascades when the key is purged)."""

    __tablename__ = "kms_aliases"
    __table_args__ = (UniqueConstraint("domain_id", "region", "alias"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    domain_id: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("kms_keys.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class KeyRotation(Base):
    """A key's rotation settings and history (rotation.py); a key never set has no row."""

    __tablename__ = "kms_key_rotations"

    key_id: Mapped[str] = mapped_column(
        ForeignKey("kms_keys.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    interval_days: Mapped[int] = mapped_column(Integer, default=365)
    rotations: Mapped[int] = mapped_column(Integer, default=0)
    last_rotation_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class KeyMaterial(Base):
    """A key's earlier material, retired by a rotation: kept (sealed as `Key.material_sealed`
    is, with the same purpose) so that what it encrypted still decrypts."""

    __tablename__ = "kms_key_materials"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("kms_keys.id", ondelete="CASCADE"), index=True)
    material_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    retired_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
