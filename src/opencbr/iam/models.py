"""IAM tables: domains (accounts), region-scoped projects, users, access keys, tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
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

__all__ = ["AccessKey", "Agency", "Domain", "LoginFailures", "Project", "Token", "User"]


class Domain(Base):
    __tablename__ = "iam_domains"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Project(Base):
    __tablename__ = "iam_projects"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    domain_id: Mapped[str] = mapped_column(ForeignKey("iam_domains.id"), index=True)
    region: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(255), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class User(Base):
    __tablename__ = "iam_users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    domain_id: Mapped[str] = mapped_column(ForeignKey("iam_domains.id"), index=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AccessKey(Base):
    __tablename__ = "iam_access_keys"

    access_key: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("iam_users.id"), index=True)
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    description: Mapped[str] = mapped_column(String(255), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Token(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "iam_tokens"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("iam_users.id"), index=True)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("iam_projects.id"), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Agency(Base):
    """A domain's delegation to a cloud service (e.g. `EVSAccessKMS` → `op_svc_evs`)."""

    __tablename__ = "iam_agencies"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    domain_id: Mapped[str] = mapped_column(ForeignKey("iam_domains.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    trust_domain_name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(255), default="")
    duration: Mapped[str] = mapped_column(String(16), default="FOREVER")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class LoginFailures(Base):
    """Consecutive failed sign-ins for one user name (see `iam.throttle`). Keyed by the name's
    SHA-256, whether or not such a user exists: an attacker's invented names cost one small
    row each, and the table says nothing about which names are users."""

    __tablename__ = "iam_login_failures"

    name_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
