"""Rebuilding the database from the catalogue the store carries (`opencbr admin recover`).

Order: the tenants (domains with their projects, users, access keys, agencies, KMS keys and
grants, policies, vaults and resources), then the scopes, then the backups with their
checkpoints and members, then each vault's used space counted again. Secrets come back sealed
by the current root key, so a recovery by the recovery key alone leaves a deployment that runs
on a new root key with the same access keys, KMS keys and data.

Idempotent and resumable: a row whose primary key exists is left as it is, tenants go one per
transaction and backups a batch per transaction, so a recovery killed at any point and run
again finishes the work. A database with tenants is refused unless the caller merges, or the
data directory's marker says a recovery into it was started and not finished.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opencbr.chunkstore import Catalogue
from opencbr.core.context import Runtime
from opencbr.iam.models import AccessKey, Agency, Domain, Project, User
from opencbr.iam.service import secret_purpose
from opencbr.kms.access import material_purpose
from opencbr.kms.models import Grant, Key, KeyAlias, KeyMaterial, KeyRotation

from .catalogue import BACKUPS, CATALOGUE_KEYS, DOMAINS, SCOPES, read_record
from .catalogue_keys import CatalogueKeys, RecoveryKey
from .catalogue_rows import from_json, insert_missing
from .dataplane import PLAIN_PURPOSE, chunk_store
from .errors import CatalogueUnreadable, RecoveryRefused
from .models import (
    Backup,
    BackupStatus,
    Checkpoint,
    Member,
    MemberStatus,
    Policy,
    StoreScope,
    Vault,
    VaultResource,
)

__all__ = ["MARKER", "RecoveryReport", "recover"]

log = logging.getLogger(__name__)

MARKER = "recovery-in-progress"
"""A file in the data directory while a recovery runs: a run again resumes into that database."""

_SETTLED = {
    BackupStatus.RESTORING: BackupStatus.AVAILABLE,
    BackupStatus.WAITING_RESTORE: BackupStatus.AVAILABLE,
}


@dataclass
class RecoveryReport:
    """What a recovery brought back (rows added now; a run again adds only what is missing)."""

    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    records: int = 0

    def add(self, what: str, added: bool) -> None:
        self.counts[what] = self.counts.get(what, 0) + int(added)

    def merge(self, other: RecoveryReport) -> None:
        for what, count in other.counts.items():
            self.counts[what] = self.counts.get(what, 0) + count
        self.skipped += other.skipped

    def as_dict(self) -> dict[str, Any]:
        return {"recovered": dict(sorted(self.counts.items())), "skipped": self.skipped}


def recover(
    runtime: Runtime,
    *,
    recovery_key: RecoveryKey | None = None,
    merge: bool = False,
    batch: int = 200,
    progress: Callable[[str, int, int], None] | None = None,
) -> RecoveryReport:
    """Rebuild the database from the store's catalogue (see the module's docstring)."""
    store = chunk_store(runtime)
    keys = CatalogueKeys.for_reading(store.catalogue, runtime.root_key, recovery_key)
    marker = Path(runtime.settings.data_dir) / MARKER
    _refuse_unless_empty(runtime, merge or marker.exists())
    marker.write_text(runtime.settings.effective_database_url + "\n")
    keys.reseal(store.catalogue, runtime.root_key)  # the current root key opens it from now on
    runtime.parts.set(CATALOGUE_KEYS, keys)
    report = RecoveryReport()
    for name in store.catalogue.names(DOMAINS):
        _guarded(report, f"{DOMAINS}/{name}", _restore_domain, runtime, store.catalogue, keys, name)
    for name in store.catalogue.names(SCOPES):
        _guarded(report, f"{SCOPES}/{name}", _restore_scope, runtime, store.catalogue, keys, name)
    with runtime.database.unit_of_work() as session:
        known = _Known.read(session, set(store.list_manifests()))
    names = store.catalogue.names(BACKUPS)
    for done, chunk in _chunks(names, batch):
        _restore_backups(runtime, store.catalogue, keys, known, chunk, report)
        if progress is not None:
            progress(BACKUPS, done, len(names))
    with runtime.database.unit_of_work() as session:
        _recount_vaults(session)
    marker.unlink(missing_ok=True)
    return report


def _refuse_unless_empty(runtime: Runtime, allowed: bool) -> None:
    if allowed:
        return
    with runtime.database.unit_of_work() as session:
        domains = session.scalar(select(func.count()).select_from(Domain)) or 0
    if domains:
        raise RecoveryRefused(
            reason=f"the database holds {domains} domains; recover into an empty database, "
            "or pass --merge to add what is missing"
        )


def _chunks(names: Sequence[str], size: int) -> Iterator[tuple[int, Sequence[str]]]:
    for start in range(0, len(names), size):
        chunk = names[start : start + size]
        yield start + len(chunk), chunk


def _guarded(report: RecoveryReport, what: str, fn: Callable[..., None], *args: Any) -> None:
    """One record in its own transaction: a record that cannot come back is reported and the
    recovery goes on."""
    try:
        fn(*args, report)
    except (CatalogueUnreadable, IntegrityError, ValueError, KeyError) as exc:
        log.warning("recovery: %s skipped: %s", what, exc)
        report.skipped.append(f"{what}: {exc}")


def _restore_domain(
    runtime: Runtime, catalogue: Catalogue, keys: CatalogueKeys, name: str, report: RecoveryReport
) -> None:
    record = read_record(catalogue, keys, DOMAINS, name)
    report.records += 1
    root_key = runtime.root_key
    with runtime.database.unit_of_work() as session:
        report.add("domains", insert_missing(session, from_json(Domain, record["domain"])))
        session.flush()
        for what, model, rows in [
            ("projects", Project, record["projects"]),
            ("users", User, record["users"]),
            ("agencies", Agency, record["agencies"]),
        ]:
            _insert_all(session, report, what, model, rows)
        for row in record["access_keys"]:
            sealed = root_key.seal(row["secret"].encode(), secret_purpose(row["access_key"]))
            added = insert_missing(session, from_json(AccessKey, row, secret_sealed=sealed))
            report.add("access_keys", added)
        for row in record["kms_keys"]:
            material = base64.b64decode(row["material"])
            sealed = root_key.seal(material, material_purpose(row["id"]))
            report.add(
                "kms_keys", insert_missing(session, from_json(Key, row, material_sealed=sealed))
            )
        for row in record.get("kms_materials", []):  # records written before rotation lack it
            material = base64.b64decode(row["material"])
            sealed = root_key.seal(material, material_purpose(row["key_id"]))
            added = insert_missing(session, from_json(KeyMaterial, row, material_sealed=sealed))
            report.add("kms_materials", added)
        session.flush()
        _insert_all(session, report, "kms_grants", Grant, record["kms_grants"])
        _insert_all(session, report, "kms_aliases", KeyAlias, record.get("kms_aliases", []))
        _insert_all(session, report, "kms_rotations", KeyRotation, record.get("kms_rotations", []))
        _insert_all(session, report, "policies", Policy, record["policies"])
        _insert_all(session, report, "vaults", Vault, record["vaults"])
        _insert_all(session, report, "vault_resources", VaultResource, record["vault_resources"])


def _insert_all(
    session: Session, report: RecoveryReport, what: str, model: type[Any], rows: list[Any]
) -> None:
    for row in rows:
        report.add(what, insert_missing(session, from_json(model, row)))
    session.flush()


def _restore_scope(
    runtime: Runtime, catalogue: Catalogue, keys: CatalogueKeys, name: str, report: RecoveryReport
) -> None:
    record = read_record(catalogue, keys, SCOPES, name)
    report.records += 1
    scope = from_json(StoreScope, record["scope"])
    if not scope.kms_key_id:  # sealed again by the current root key
        data_key = base64.b64decode(record["data_key"])
        scope.wrapped_key = runtime.root_key.seal(data_key, f"{PLAIN_PURPOSE}:{scope.region}")
    with runtime.database.unit_of_work() as session:
        report.add("scopes", insert_missing(session, scope))


@dataclass
class _Known:
    """The ids backups may point to, read once: a batch checks them without a query each."""

    projects: set[str]
    vaults: set[str]
    scopes: set[str]
    manifests: set[str]

    @classmethod
    def read(cls, session: Session, manifests: set[str]) -> _Known:
        return cls(
            set(session.scalars(select(Project.id))),
            set(session.scalars(select(Vault.id))),
            set(session.scalars(select(StoreScope.id))),
            manifests,
        )


def _restore_backups(
    runtime: Runtime,
    catalogue: Catalogue,
    keys: CatalogueKeys,
    known: _Known,
    chunk: Sequence[str],
    report: RecoveryReport,
) -> None:
    """A batch of backups in one transaction; should it fail, each of them in its own."""
    records = [_usable(catalogue, keys, name, known, report) for name in chunk]
    usable = [(name, r) for name, r in zip(chunk, records, strict=True) if r is not None]
    try:
        counted = RecoveryReport()
        with runtime.database.unit_of_work() as session:
            _insert_backups(session, usable, known, counted)
    except IntegrityError:
        counted = RecoveryReport()
        for name, record in usable:
            try:
                with runtime.database.unit_of_work() as session:
                    _insert_backups(session, [(name, record)], known, counted)
            except IntegrityError as exc:
                report.skipped.append(f"{BACKUPS}/{name}: {exc.orig}")
    report.merge(counted)


def _usable(
    catalogue: Catalogue,
    keys: CatalogueKeys,
    name: str,
    known: _Known,
    report: RecoveryReport,
) -> dict[str, Any] | None:
    """The record, if it opens and names only manifests and rows that are there."""
    try:
        record = read_record(catalogue, keys, BACKUPS, name)
    except CatalogueUnreadable as exc:
        report.skipped.append(f"{BACKUPS}/{name}: {exc}")
        return None
    report.records += 1
    missing = [m for m in record["manifests"] if m not in known.manifests]
    if missing:  # a crashed backup's record, or one whose data was collected
        report.skipped.append(f"{BACKUPS}/{name}: manifest {missing[0]} is not in the store")
        return None
    backup = record["backup"]
    problem = (
        f"its project {backup['project_id']} was not recovered"
        if backup["project_id"] not in known.projects
        else f"its vault {backup['vault_id']} was not recovered"
        if backup["vault_id"] not in known.vaults
        else next(
            (f"its scope {s} was not recovered" for s in record["scopes"] if s not in known.scopes),
            "",
        )
    )
    if problem:
        report.skipped.append(f"{BACKUPS}/{name}: {problem}")
        return None
    return record


def _existing(session: Session, model: type[Any], ids: list[str]) -> set[str]:
    return set(session.scalars(select(model.id).where(model.id.in_(ids)))) if ids else set()


def _insert_backups(
    session: Session,
    records: list[tuple[str, dict[str, Any]]],
    known: _Known,
    report: RecoveryReport,
) -> None:
    """Checkpoints, backups and members not there yet (a recovery run again skips the rest)."""
    checkpoints = [r["checkpoint"] for _, r in records if r["checkpoint"] is not None]
    backups = [row for _, r in records for row in [r["backup"], *r["children"]]]
    members = [(name, row) for name, r in records for row in r["members"]]
    members = [(n, m) for n, m in members if _member_usable(n, m, known, report)]
    for what, model, rows in [
        ("checkpoints", Checkpoint, checkpoints),
        ("backups", Backup, backups),
        ("members", Member, [m for _, m in members]),
    ]:
        there = _existing(session, model, [row["id"] for row in rows])
        for row in rows:
            if row["id"] in there:  # a recovery run again, or a checkpoint of two backups
                continue
            there.add(row["id"])
            status = _SETTLED.get(row["status"], row["status"]) if model is Backup else None
            extra = {"status": status} if status is not None else {}
            session.add(from_json(model, row, **extra))
            report.add(what, True)
        session.flush()


def _member_usable(name: str, row: dict[str, Any], known: _Known, report: RecoveryReport) -> bool:
    if row["dest_project_id"] not in known.projects:
        reason = f"project {row['dest_project_id']} was not recovered"
    elif row.get("vault_id") and row["vault_id"] not in known.vaults:
        reason = f"vault {row['vault_id']} was not recovered"
    else:
        return True
    report.skipped.append(f"{BACKUPS}/{name}: member {row['id']}: {reason}")
    return False


def _recount_vaults(session: Session) -> None:
    """A vault's used space: its own backups' added bytes and its accepted shares' sizes."""
    own = (
        select(func.coalesce(func.sum(Backup.stored_bytes), 0))
        .where(Backup.vault_id == Vault.id, Backup.parent_id.is_(None))
        .scalar_subquery()
    )
    shared = (
        select(func.coalesce(func.sum(Member.reserved_bytes), 0))
        .where(Member.vault_id == Vault.id, Member.status == MemberStatus.ACCEPTED)
        .scalar_subquery()
    )
    session.execute(update(Vault).values(used_bytes=own + shared))
