"""The catalogue the store carries: what `opencbr admin recover` rebuilds the database from.

Records (JSON, sealed by the catalogue key, catalogue_keys.py; framed by the store)::

    catalogue/domains/<domain id>   a tenant: its domain, projects, users, access keys with
                                    their secrets, agencies, KMS keys with their material,
                                    grants, policies, vaults (without their used space, which
                                    a recovery counts again) and the vaults' resources
    catalogue/scopes/<scope id>     a dedup scope: its row; a plain scope's data key too (an
                                    encrypted scope's is wrapped by an escrowed KMS key)
    catalogue/backups/<backup id>   a backup (a server backup with its disks' backups), its
                                    checkpoint, its members and the manifests it needs

When they are written (the store's rules, chunkstore/store.py, "Catalogue"):

- a backup's record after its manifests: the job that completes a backup enqueues
  `cbr.catalogue` in the transaction that makes it available; so do a rename, a share, an
  accept, a reject and a member's removal. The job writes the backup's scopes and its
  owner's and recipients' domains first, then its record, from the database as it is when
  the job runs (a later change enqueues another job). A record is never older than the last
  finished job of its backup;
- a deleted backup's record goes before its manifests (`jobs._drop_backup`);
- a domain's record is rewritten with each backup's and, by the scheduler, every
  `CATALOGUE_PERIOD` (identities and keys changed since), skipped when unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.chunkstore import Catalogue, ChunkStoreError
from opencbr.core.context import Part, Runtime
from opencbr.core.jobs import JobContext, throttled
from opencbr.iam.models import AccessKey, Agency, Domain, Project, User
from opencbr.iam.service import secret_purpose
from opencbr.kms.access import master_key, material_purpose
from opencbr.kms.models import Grant, Key, KeyAlias, KeyMaterial, KeyRotation

from .catalogue_keys import CatalogueKeys
from .catalogue_rows import to_json
from .dataplane import chunk_store, plain_data_key
from .jobs.common import RuntimeJob
from .jobs.payloads import CataloguePayload
from .models import (
    Backup,
    BackupStatus,
    Checkpoint,
    Member,
    Policy,
    StoreScope,
    Vault,
    VaultResource,
)

__all__ = [
    "BACKUPS",
    "CATALOGUE_JOB",
    "DOMAINS",
    "FORMAT",
    "SCOPES",
    "CatalogueJob",
    "catalogue_keys",
    "catalogue_tick",
    "delete_backup_record",
    "enqueue_catalogue",
    "escrow_all",
    "read_record",
    "recorded_manifests",
    "write_backup_record",
]

DOMAINS, SCOPES, BACKUPS = "domains", "scopes", "backups"
FORMAT = 1
CATALOGUE_JOB = CataloguePayload.kind
CATALOGUE_PERIOD = timedelta(minutes=10)
# Seconds a process trusts its memory of what it wrote: well above CATALOGUE_PERIOD, so the
# periodic pass rewrites (and unseals the secrets of) only records that changed, and a record
# lost from the store some other way comes back within hours.
_UNCHANGED_FOR = 6 * 3600.0
_RECORDED = (BackupStatus.AVAILABLE, BackupStatus.ERROR, BackupStatus.RESTORING)
CATALOGUE_KEYS: Part[CatalogueKeys] = Part("cbr.catalogue_keys")
"""The keys this process seals catalogue records with (dropped when the root key changes)."""
_WRITTEN: Part[dict[str, tuple[bytes, float]]] = Part("cbr.catalogue_written")
"""What this process wrote lately: record name -> (digest, when)."""


def catalogue_keys(runtime: Runtime) -> CatalogueKeys:
    keys = runtime.parts.get(CATALOGUE_KEYS)
    if keys is None:
        keys = CatalogueKeys.for_writing(chunk_store(runtime).catalogue, runtime.root_key)
        runtime.parts.set(CATALOGUE_KEYS, keys)
    return keys


def _catalogue(runtime: Runtime) -> Catalogue:
    return chunk_store(runtime).catalogue


def _put(runtime: Runtime, kind: str, name: str, record: Mapping[str, Any]) -> None:
    """Seal and write a record, unless this process wrote the same one lately."""
    plain = json.dumps({"format": FORMAT, **record}, sort_keys=True).encode()
    digest = hashlib.sha256(plain).digest()
    written = runtime.parts.setdefault(_WRITTEN, dict)
    last = written.get(f"{kind}/{name}")
    if last is not None and last[0] == digest and time.monotonic() - last[1] < _UNCHANGED_FOR:
        return
    sealed = catalogue_keys(runtime).seal(kind, name, plain)
    _catalogue(runtime).put(kind, name, sealed)
    written[f"{kind}/{name}"] = (digest, time.monotonic())


def read_record(catalogue: Catalogue, keys: CatalogueKeys, kind: str, name: str) -> dict[str, Any]:
    """A record opened and parsed; `CatalogueUnreadable` when it cannot be."""
    from .errors import CatalogueUnreadable

    try:
        sealed = catalogue.get(kind, name)
    except ChunkStoreError as exc:  # a damaged frame
        raise CatalogueUnreadable(reason=str(exc)) from exc
    if sealed is None:
        raise CatalogueUnreadable(reason=f"{kind}/{name} is gone")
    record = json.loads(keys.open(kind, name, sealed))
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CatalogueUnreadable(reason=f"{kind}/{name}: unknown record format")
    return record


# ------------------------------------------------------------------------------- records


def _rows(session: Session, query: Any) -> list[dict[str, Any]]:
    return [to_json(row) for row in session.scalars(query)]


def domain_record(session: Session, runtime: Runtime, domain_id: str) -> dict[str, Any] | None:
    domain = session.get(Domain, domain_id)
    if domain is None:
        return None
    projects = select(Project.id).where(Project.domain_id == domain_id)
    users = select(User.id).where(User.domain_id == domain_id)
    keys = list(session.scalars(select(Key).where(Key.domain_id == domain_id).order_by(Key.id)))
    access_keys = session.scalars(
        select(AccessKey).where(AccessKey.user_id.in_(users)).order_by(AccessKey.access_key)
    )
    vaults = select(Vault.id).where(Vault.project_id.in_(projects))
    return {
        "domain": to_json(domain),
        "projects": _rows(session, select(Project).where(Project.id.in_(projects))),
        "users": _rows(session, select(User).where(User.id.in_(users))),
        "access_keys": [
            {
                **to_json(k, leave_out=("secret_sealed",)),
                "secret": runtime.root_key.unseal(
                    k.secret_sealed, secret_purpose(k.access_key)
                ).decode(),
            }
            for k in access_keys
        ],
        "agencies": _rows(session, select(Agency).where(Agency.domain_id == domain_id)),
        "kms_keys": [
            {
                **to_json(k, leave_out=("material_sealed",)),
                "material": base64.b64encode(master_key(runtime.root_key, k)).decode(),
            }
            for k in keys
        ],
        "kms_grants": _rows(session, select(Grant).where(Grant.key_id.in_([k.id for k in keys]))),
        # A rotated key's retired material still decrypts what it encrypted: kept with the key.
        "kms_materials": _retired_materials(session, runtime, [k.id for k in keys]),
        "kms_aliases": _rows(session, select(KeyAlias).where(KeyAlias.domain_id == domain_id)),
        "kms_rotations": _rows(
            session, select(KeyRotation).where(KeyRotation.key_id.in_([k.id for k in keys]))
        ),
        "policies": _rows(session, select(Policy).where(Policy.project_id.in_(projects))),
        "vaults": [
            to_json(v, leave_out=("used_bytes",))
            for v in session.scalars(select(Vault).where(Vault.id.in_(vaults)).order_by(Vault.id))
        ],
        "vault_resources": _rows(
            session, select(VaultResource).where(VaultResource.vault_id.in_(vaults))
        ),
    }


def _retired_materials(
    session: Session, runtime: Runtime, key_ids: list[str]
) -> list[dict[str, Any]]:
    materials = session.scalars(
        select(KeyMaterial).where(KeyMaterial.key_id.in_(key_ids)).order_by(KeyMaterial.id)
    )
    return [
        {
            **to_json(m, leave_out=("material_sealed",)),
            "material": base64.b64encode(
                runtime.root_key.unseal(m.material_sealed, material_purpose(m.key_id))
            ).decode(),
        }
        for m in materials
    ]


def scope_record(runtime: Runtime, scope: StoreScope) -> dict[str, Any]:
    record: dict[str, Any] = {"scope": to_json(scope)}
    if not scope.kms_key_id:
        record["data_key"] = base64.b64encode(plain_data_key(runtime, scope)).decode()
    return record


def backup_record(session: Session, backup: Backup) -> dict[str, Any]:
    children = list(
        session.scalars(select(Backup).where(Backup.parent_id == backup.id).order_by(Backup.id))
    )
    checkpoint = session.get(Checkpoint, backup.checkpoint_id)
    members = session.scalars(
        select(Member).where(Member.backup_id == backup.id).order_by(Member.id)
    )
    rows = [backup, *children]
    return {
        "backup": to_json(backup),
        "children": [to_json(c) for c in children],
        "checkpoint": to_json(checkpoint) if checkpoint is not None else None,
        "members": [to_json(m) for m in members],
        "manifests": sorted({r.manifest_id for r in rows if r.manifest_id}),
        "scopes": sorted({r.scope_id for r in rows if r.scope_id}),
    }


# ------------------------------------------------------------------------------- writing


def _recipient_domains(session: Session, backup_id: str) -> list[str]:
    query = (
        select(Project.domain_id)
        .join(Member, Member.dest_project_id == Project.id)
        .where(Member.backup_id == backup_id)
        .distinct()
    )
    return list(session.scalars(query))


def write_domain(session: Session, runtime: Runtime, domain_id: str) -> None:
    record = domain_record(session, runtime, domain_id)
    if record is not None:
        _put(runtime, DOMAINS, domain_id, record)


def write_backup_record(runtime: Runtime, backup_id: str, *, parents: bool = True) -> bool:
    """Write a backup's record (with `parents`, its scopes' and domains' first); False when
    it has none to write (gone, being made or being deleted)."""
    # The backup's row stays locked until its record is written: two jobs of one backup (a
    # share, then an accept) write one after the other, the later from the later state.
    with runtime.database.unit_of_work() as session:
        backup = session.get(Backup, backup_id, with_for_update=True)
        if backup is None or backup.parent_id is not None or backup.status not in _RECORDED:
            return False
        record = backup_record(session, backup)
        if parents:
            _write_parents(session, runtime, backup, record["scopes"])
        _put(runtime, BACKUPS, backup_id, record)
    return True


def _write_parents(
    session: Session, runtime: Runtime, backup: Backup, scope_ids: list[str]
) -> None:
    """The records a backup's record needs: its scopes', its owner's and recipients' domains."""
    for scope_id in scope_ids:
        scope = session.get(StoreScope, scope_id)
        if scope is not None:
            _put(runtime, SCOPES, scope_id, scope_record(runtime, scope))
    owner = session.get(Project, backup.project_id)
    domains = {owner.domain_id} if owner is not None else set()
    for domain_id in sorted(domains | set(_recipient_domains(session, backup.id))):
        write_domain(session, runtime, domain_id)


def recorded_manifests(runtime: Runtime) -> set[str]:
    """Every manifest a backup record names: roots of garbage collection as well as the
    database's, so that a service started on an empty or older database (before `admin
    recover`) never collects the data of backups only the catalogue knows. Raises
    `CatalogueUnreadable` when a record cannot be read (its manifests are unknown)."""
    catalogue, keys = _catalogue(runtime), catalogue_keys(runtime)
    found: set[str] = set()
    for name in catalogue.names(BACKUPS):
        found.update(read_record(catalogue, keys, BACKUPS, name)["manifests"])
    return found


def delete_backup_record(runtime: Runtime, backup_id: str) -> None:
    _catalogue(runtime).delete(BACKUPS, backup_id)


def escrow_all(runtime: Runtime, *, backups: bool = True) -> dict[str, int]:
    """Write every domain's and scope's record, and with `backups` every backup's: how a
    store made before the catalogue gets one, and the scheduler's periodic pass (domains)."""
    counts = {"domains": 0, "scopes": 0, "backups": 0}
    with runtime.database.unit_of_work() as session:
        for domain_id in session.scalars(select(Domain.id).order_by(Domain.id)):
            write_domain(session, runtime, domain_id)
            counts["domains"] += 1
        for scope in session.scalars(select(StoreScope).order_by(StoreScope.id)):
            _put(runtime, SCOPES, scope.id, scope_record(runtime, scope))
            counts["scopes"] += 1
        ids = list(
            session.scalars(
                select(Backup.id).where(Backup.parent_id.is_(None), Backup.status.in_(_RECORDED))
            )
            if backups
            else []
        )
    # Every domain and scope was written above.
    counts["backups"] = sum(
        write_backup_record(runtime, backup_id, parents=False) for backup_id in ids
    )
    return counts


def enqueue_catalogue(session: Session, backup_id: str) -> None:
    """Have the backup's record rewritten once the caller's transaction commits."""
    CataloguePayload(backup_id=backup_id).enqueue(session, None, max_attempts=10)


class CatalogueJob(RuntimeJob):
    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime = self.runtime
        written = write_backup_record(runtime, CataloguePayload.of(ctx).backup_id)
        return {"written": written}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        del ctx, error  # the next change or `opencbr admin catalogue sync` writes it


def catalogue_tick(runtime: Runtime) -> Callable[[], None]:
    """A `WorkerPool.tick` hook: every tenant's and scope's record rewritten where changed
    (identities and keys made or changed since their last backup)."""
    started = [False]

    def action() -> None:
        if started[0]:  # the first period starts with the process
            escrow_all(runtime, backups=False)
        started[0] = True

    return throttled(CATALOGUE_PERIOD, action, "catalogue escrow")
