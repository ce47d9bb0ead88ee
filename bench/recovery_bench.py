"""Recovery benchmark: write the catalogue of N backups into a store, lose the database,
`opencbr admin recover` it, and measure the recovery's time and peak memory.

    uv run python bench/recovery_bench.py [--backups 10000] [--postgresql]

The backups are records (bulk-inserted) of two tenants: every one a backup of the same real
disk data (one manifest, 1 MiB, written by the store), every tenth shared with and accepted by
the second tenant. `admin catalogue sync` writes their records (timed too), the database is
deleted (SQLite file, or a PostgreSQL database made and dropped for the run) and the recovery
runs as its own process (`opencbr admin recover --json`), its peak RSS read from the kernel.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from opencbr.api.runtime import build_runtime
from opencbr.cbr.catalogue import escrow_all
from opencbr.cbr.dataplane import chunk_store, open_scope, scope_for
from opencbr.cbr.models import Backup, Checkpoint, Member, Vault
from opencbr.core.context import Actor, Runtime
from opencbr.core.settings import Settings
from opencbr.iam import service as iam

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _vault(session: object, project: str, name: str) -> Vault:
    vault = Vault(
        id=str(uuid.uuid4()),
        project_id=project,
        region="region-1",
        user_id="",
        name=name,
        object_type="disk",
        size_gb=10_000,
    )
    session.add(vault)  # type: ignore[attr-defined]
    return vault


def populate(runtime: Runtime, count: int) -> None:
    """Two tenants, a vault each, `count` backups of one real manifest, every tenth shared."""
    with runtime.database.unit_of_work() as session:
        regions = runtime.settings.regions
        owner = iam.create_tenant(session, runtime.root_key, regions, "owner", ["region-1"])
        other = iam.create_tenant(session, runtime.root_key, regions, "other", ["region-1"])
        project, inbox_project = owner.projects["region-1"], other.projects["region-1"]
        actor = Actor(owner.domain_id, "", project, "region-1")
        vault, inbox = _vault(session, project, "vault"), _vault(session, inbox_project, "inbox")
        row = scope_for(session, runtime, actor, "region-1", "")
        scope = open_scope(session, runtime, actor, row)
        scope_id, vault_id, inbox_id = row.id, vault.id, inbox.id
    data = os.urandom(1 << 20)
    manifest = chunk_store(runtime).backup(scope, io.BytesIO(data), len(data)).manifest_id
    start = dt.datetime(2026, 1, 1)
    with runtime.database.unit_of_work() as session:
        for number in range(count):
            checkpoint = Checkpoint(
                id=str(uuid.uuid4()), project_id=project, vault_id=vault_id, name=f"c{number}"
            )
            when = start + dt.timedelta(minutes=number)
            backup = Backup(
                id=str(uuid.uuid4()),
                project_id=project,
                region="region-1",
                vault_id=vault_id,
                checkpoint_id=checkpoint.id,
                name=f"backup-{number}",
                status="available",
                resource_id=str(uuid.uuid4()),
                resource_type="OS::Cinder::Volume",
                size_bytes=len(data),
                stored_bytes=len(data),
                scope_id=scope_id,
                manifest_id=manifest,
                created_at=when,
                protected_at=when,
            )
            session.add_all([checkpoint, backup])
            if number % 10 == 0:
                session.add(
                    Member(
                        id=str(uuid.uuid4()),
                        backup_id=backup.id,
                        dest_project_id=inbox_project,
                        backup_created_at=when,
                        status="accepted",
                        vault_id=inbox_id,
                        reserved_bytes=len(data),
                    )
                )
            if number % 1000 == 999:
                session.flush()


def _database(args: argparse.Namespace, work: Path) -> tuple[str, str]:
    if not args.postgresql:
        return f"sqlite:///{work / 'opencbr.db'}", ""
    name = f"opencbr_recovery_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", name


def _lose(url: str, pg_name: str, work: Path) -> None:
    if not pg_name:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work / 'opencbr.db'}{suffix}").unlink(missing_ok=True)
        return
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{pg_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{pg_name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backups", type=int, default=10_000)
    parser.add_argument("--postgresql", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opencbr-recovery-bench-"))
    url, pg_name = _database(args, work)
    try:
        settings = Settings(data_dir=work / "data", database_url=url)
        runtime = build_runtime(settings)
        started = time.monotonic()
        populate(runtime, args.backups)
        print(f"populated {args.backups} backups in {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        counts = escrow_all(runtime)
        print(f"catalogue sync: {counts} in {time.monotonic() - started:.1f} s")
        runtime.database.dispose()
        _lose(url, pg_name, work)
        command = ["opencbr", "admin", "recover", "--json"]
        command += ["--data-dir", str(work / "data"), "--database-url", url]
        started = time.monotonic()
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        seconds = time.monotonic() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        report = json.loads(output)
        print(f"recover: {seconds:.1f} s wall, peak RSS {peak:.0f} MiB, {report['recovered']}")
        if report["skipped"]:
            print(f"skipped: {report['skipped'][:5]}", file=sys.stderr)
    finally:
        if pg_name:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
