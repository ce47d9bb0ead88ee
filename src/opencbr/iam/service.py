"""IAM operations: tenants, projects, users, access keys, tokens, and credential lookup.

Every read that acts for a caller is scoped by the caller's domain in SQL; a project of
another domain is reported exactly like one that does not exist (S14).
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, and_, bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.db import rows_of
from opencbr.core.errors import Conflict, ProjectNotFound, ValidationFailed
from opencbr.core.ids import is_hex32, new_hex32
from opencbr.core.secrets import RootKey

from .errors import (
    AccessKeyNotFound,
    DomainNotFound,
    LoginFailed,
    NameTaken,
    UnknownRegion,
    UserNotFound,
)
from .models import AccessKey, Agency, Domain, Project, Token, User

__all__ = [
    "Principal",
    "ProjectScope",
    "TenantCredentials",
    "create_access_key",
    "create_domain",
    "create_project",
    "create_tenant",
    "create_user",
    "delete_access_key",
    "delete_domain",
    "delete_project",
    "delete_user",
    "domain_by_name",
    "get_domain",
    "issue_token",
    "list_access_keys",
    "list_domains",
    "list_projects",
    "list_users",
    "resolve_access_key",
    "resolve_access_key_in_project",
    "resolve_token",
    "revoke_token",
    "secret_purpose",
    "set_password",
    "visible_project",
]

_HASHER = PasswordHasher()
_ALNUM = string.ascii_uppercase + string.digits
_SK_ALPHABET = string.ascii_letters + string.digits
_SK_PURPOSE = "iam.access-key-secret"


def secret_purpose(access_key: str) -> str:
    """The root-key sealing purpose of an access key's secret (binds it to the key)."""
    return _SK_PURPOSE + ":" + access_key


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user of a domain, optionally scoped to one project by a token."""

    domain_id: str
    user_id: str
    user_name: str
    token_project_id: str | None = None


class ProjectScope(NamedTuple):
    """An enabled project of the caller's domain, as a request acts in it."""

    id: str
    region: str


@dataclass(frozen=True)
class TenantCredentials:
    domain_id: str
    domain_name: str
    projects: dict[str, str]
    user_name: str
    password: str
    access_key: str
    secret_key: str


def _check_name(kind: str, name: str) -> None:
    allowed = set(string.ascii_letters + string.digits + "-_.")
    if not 1 <= len(name) <= 64 or not set(name) <= allowed:
        raise ValidationFailed(reason=f"{kind} name must be 1-64 of letters, digits, '-', '_', '.'")


def _flush(session: Session, kind: str, name: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise NameTaken(kind=kind, name=name) from exc


def create_domain(session: Session, name: str) -> Domain:
    _check_name("domain", name)
    if session.scalar(select(Domain.id).where(Domain.name == name)):
        raise NameTaken(kind="domain", name=name)
    domain = Domain(id=new_hex32(), name=name)
    session.add(domain)
    _flush(session, "domain", name)
    return domain


def create_project(
    session: Session,
    domain_id: str,
    region: str,
    known_regions: Sequence[str],
    suffix: str | None = None,
) -> Project:
    """The region's built-in project is named after the region; others `<region>_<suffix>`."""
    if region not in known_regions:
        raise UnknownRegion(region=region, regions=", ".join(known_regions))
    get_domain(session, domain_id)
    name = region if suffix is None else f"{region}_{suffix}"
    _check_name("project", name)
    if session.scalar(
        select(Project.id).where(Project.domain_id == domain_id, Project.name == name)
    ):
        raise NameTaken(kind="project", name=name)
    project = Project(id=new_hex32(), domain_id=domain_id, region=region, name=name)
    session.add(project)
    _flush(session, "project", name)
    return project


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise ValidationFailed(reason="a password needs at least 8 characters")


def create_user(session: Session, domain_id: str, name: str, password: str) -> User:
    _check_name("user", name)
    _check_password(password)
    get_domain(session, domain_id)
    if session.scalar(select(User.id).where(User.name == name)):
        raise NameTaken(kind="user", name=name)
    user = User(
        id=new_hex32(), domain_id=domain_id, name=name, password_hash=_HASHER.hash(password)
    )
    session.add(user)
    _flush(session, "user", name)
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """Replace the user's password (only its argon2 hash is stored)."""
    _check_password(password)
    user.password_hash = _HASHER.hash(password)
    session.flush()


def create_access_key(session: Session, root_key: RootKey, user_id: str) -> tuple[str, str]:
    """A new AK/SK pair; the SK is stored sealed under the root key and returned only here."""
    if session.get(User, user_id) is None:
        raise UserNotFound(id=user_id)
    access_key = "".join(secrets.choice(_ALNUM) for _ in range(20))
    secret_key = "".join(secrets.choice(_SK_ALPHABET) for _ in range(40))
    sealed = root_key.seal(secret_key.encode(), _SK_PURPOSE + ":" + access_key)
    session.add(AccessKey(access_key=access_key, user_id=user_id, secret_sealed=sealed))
    session.flush()
    return access_key, secret_key


def create_tenant(
    session: Session,
    root_key: RootKey,
    known_regions: Sequence[str],
    name: str,
    regions: Sequence[str],
    password: str | None = None,
) -> TenantCredentials:
    """A domain with a project in each region, an admin user and one access key."""
    if not regions:
        raise ValidationFailed(reason="a tenant needs at least one region")
    domain = create_domain(session, name)
    projects = {r: create_project(session, domain.id, r, known_regions).id for r in regions}
    password = password or secrets.token_urlsafe(12)
    user = create_user(session, domain.id, name, password)
    access_key, secret_key = create_access_key(session, root_key, user.id)
    return TenantCredentials(
        domain.id, domain.name, projects, user.name, password, access_key, secret_key
    )


def get_domain(session: Session, domain_id: str) -> Domain:
    domain = session.get(Domain, domain_id) if is_hex32(domain_id) else None
    if domain is None:
        raise DomainNotFound(id=domain_id)
    return domain


def domain_by_name(session: Session, name: str) -> Domain:
    domain = session.scalar(select(Domain).where(Domain.name == name))
    if domain is None:
        raise DomainNotFound(id=name)
    return domain


def list_domains(session: Session) -> list[Domain]:
    return list(session.scalars(select(Domain).order_by(Domain.name)))


def list_projects(
    session: Session, domain_id: str | None = None, name: str | None = None
) -> list[Project]:
    query = select(Project).order_by(Project.region, Project.name)
    if domain_id is not None:
        query = query.where(Project.domain_id == domain_id)
    if name is not None:
        query = query.where(Project.name == name)
    return list(session.scalars(query))


def list_users(session: Session, domain_id: str | None = None) -> list[User]:
    query = select(User).order_by(User.name)
    if domain_id is not None:
        query = query.where(User.domain_id == domain_id)
    return list(session.scalars(query))


def list_access_keys(session: Session, user_id: str | None = None) -> list[AccessKey]:
    query = select(AccessKey).order_by(AccessKey.created_at)
    if user_id is not None:
        query = query.where(AccessKey.user_id == user_id)
    return list(session.scalars(query))


def visible_project(session: Session, domain_id: str, project_id: str) -> Project:
    """The caller's project, or ProjectNotFound — the same for absent and foreign (S14)."""
    project = None
    if is_hex32(project_id):
        project = session.scalar(_PROJECT_IN_DOMAIN, {"id": project_id, "domain_id": domain_id})
    if project is None or not project.enabled:
        raise ProjectNotFound(project_id=project_id)
    return project


def _principal(session: Session, user: User) -> Principal:
    domain = session.get(Domain, user.domain_id)
    if domain is None or not domain.enabled or not user.enabled:
        raise LoginFailed()
    return Principal(domain_id=user.domain_id, user_id=user.id, user_name=user.name)


def _enabled_user(credential: Any, user_id: Any) -> Select[Any]:
    """A credential's column and its user's id, name and domain, when the user and its domain
    are enabled: one query, as every signed request makes it (it was three lookups, a third
    of such a request's database work)."""
    return (
        select(credential, User.id, User.name, User.domain_id)
        .join(User, User.id == user_id)
        .join(Domain, Domain.id == User.domain_id)
        .where(User.enabled.is_(True), Domain.enabled.is_(True))
    )


# The lookups of every signed request, built once: building a statement and its cache key
# costs about as much CPU as running it. They read columns, not objects, so they run on the
# session's connection: the ORM's handling of a statement (which only passes columns through
# here) was a measurable share of a signed request's CPU (bench/README.md).
_ENABLED_ACCESS_KEY = _enabled_user(AccessKey.secret_sealed, AccessKey.user_id).where(
    AccessKey.access_key == bindparam("access_key"), AccessKey.enabled.is_(True)
)
_PROJECT_IN_DOMAIN = select(Project).where(
    Project.id == bindparam("id"), Project.domain_id == bindparam("domain_id")
)
_ENABLED_ACCESS_KEY_AND_PROJECT = _ENABLED_ACCESS_KEY.add_columns(
    Project.id, Project.region
).outerjoin(
    Project,
    and_(
        Project.id == bindparam("project_id"),
        Project.domain_id == User.domain_id,
        Project.enabled.is_(True),
    ),
)


def resolve_access_key(
    session: Session, root_key: RootKey, access_key: str
) -> tuple[str, Principal]:
    """The secret key and owner of an enabled access key; LoginFailed when unknown."""
    row = rows_of(session).execute(_ENABLED_ACCESS_KEY, {"access_key": access_key}).first()
    if row is None:
        raise LoginFailed()
    sealed, user_id, user_name, domain_id = row
    secret = root_key.unseal(sealed, _SK_PURPOSE + ":" + access_key).decode()
    return secret, Principal(domain_id=domain_id, user_id=user_id, user_name=user_name)


def resolve_access_key_in_project(
    session: Session, root_key: RootKey, access_key: str, project_id: str
) -> tuple[str, Principal, ProjectScope | None]:
    """`resolve_access_key`, and the project the request names when it is an enabled project
    of the key's domain (None otherwise, S14), read in the same statement: a signed request
    in a project makes one lookup instead of two."""
    if not is_hex32(project_id):
        return *resolve_access_key(session, root_key, access_key), None
    values = {"access_key": access_key, "project_id": project_id}
    row = rows_of(session).execute(_ENABLED_ACCESS_KEY_AND_PROJECT, values).first()
    if row is None:
        raise LoginFailed()
    sealed, user_id, user_name, domain_id, found_id, region = row
    secret = root_key.unseal(sealed, _SK_PURPOSE + ":" + access_key).decode()
    principal = Principal(domain_id=domain_id, user_id=user_id, user_name=user_name)
    return secret, principal, None if found_id is None else ProjectScope(found_id, region)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    session: Session,
    user_name: str,
    password: str,
    ttl: timedelta,
    project_id: str | None = None,
    domain_name: str | None = None,
) -> tuple[str, Principal, datetime]:
    user = session.scalar(select(User).where(User.name == user_name))
    if user is None:
        _HASHER.hash(password)  # same cost as a real check: no user-name oracle by timing
        raise LoginFailed()
    try:
        _HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        raise LoginFailed() from exc
    principal = _principal(session, user)
    if domain_name is not None and get_domain(session, user.domain_id).name != domain_name:
        raise LoginFailed()
    if project_id is not None:
        visible_project(session, principal.domain_id, project_id)
    token = secrets.token_urlsafe(48)
    expires = utcnow() + ttl
    session.add(
        Token(digest=_digest(token), user_id=user.id, project_id=project_id, expires_at=expires)
    )
    session.flush()
    return token, Principal(user.domain_id, user.id, user.name, project_id), expires


def resolve_token(session: Session, token: str) -> Principal:
    query = _enabled_user(Token.project_id, Token.user_id).where(
        Token.digest == _digest(token), Token.expires_at >= utcnow()
    )
    row = session.execute(query).first()
    if row is None:
        raise LoginFailed()
    project_id, user_id, user_name, domain_id = row
    return Principal(domain_id, user_id, user_name, project_id)


def revoke_token(session: Session, token: str) -> None:
    """End a token now (sign-out): its row goes, so it no longer resolves. Unknown or already
    revoked tokens are ignored."""
    session.execute(delete(Token).where(Token.digest == _digest(token)))
    session.flush()


def delete_domain(session: Session, domain_id: str) -> None:
    """Remove a domain with its users, keys and projects; refused while it owns resources."""
    get_domain(session, domain_id)
    user_ids = select(User.id).where(User.domain_id == domain_id)
    try:
        session.execute(delete(Token).where(Token.user_id.in_(user_ids)))
        session.execute(delete(AccessKey).where(AccessKey.user_id.in_(user_ids)))
        session.execute(delete(User).where(User.domain_id == domain_id))
        session.execute(delete(Agency).where(Agency.domain_id == domain_id))
        session.execute(delete(Project).where(Project.domain_id == domain_id))
        session.execute(delete(Domain).where(Domain.id == domain_id))
        session.flush()
    except IntegrityError as exc:
        raise Conflict(reason=f"domain {domain_id} still owns resources") from exc


def delete_project(session: Session, project_id: str) -> None:
    project = session.get(Project, project_id) if is_hex32(project_id) else None
    if project is None:
        raise ProjectNotFound(project_id=project_id)
    try:
        session.execute(delete(Token).where(Token.project_id == project_id))
        session.delete(project)
        session.flush()
    except IntegrityError as exc:
        raise Conflict(reason=f"project {project_id} still owns resources") from exc


def delete_user(session: Session, user_id: str) -> None:
    user = session.get(User, user_id) if is_hex32(user_id) else None
    if user is None:
        raise UserNotFound(id=user_id)
    session.execute(delete(Token).where(Token.user_id == user_id))
    session.execute(delete(AccessKey).where(AccessKey.user_id == user_id))
    session.delete(user)
    session.flush()


def delete_access_key(session: Session, access_key: str) -> None:
    row = session.get(AccessKey, access_key)
    if row is None:
        raise AccessKeyNotFound(id=access_key)
    session.delete(row)
    session.flush()
