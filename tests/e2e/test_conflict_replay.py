"""A request whose transaction PostgreSQL aborts to break a deadlock runs again, so the client
gets its answer, not a 500, and the aborted attempt leaves nothing behind.

The deadlock is real: the test holds one recipient vault's row lock, lets a DeleteBackup (which
locks both recipient vaults in id order) take the other and wait, then asks for the other one
itself. The test's session waits longer before checking for deadlocks, so PostgreSQL picks the
request's transaction as the victim.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx
import psycopg
import pytest
from sqlalchemy import func, select

from opencbr.cbr import members
from opencbr.cbr.models import Backup, GiB, Member
from opencbr.core.context import Runtime
from tests.conftest import LiveServer, TenantFactory
from tests.e2e.signed import sign
from tests.integration.cbr.sharing_fixtures import (
    make_vault,
    party,
    run,
    set_status,
    stored_backup,
    vault_row,
)


@pytest.fixture
def database_url(pg_database: str) -> str:
    """Only PostgreSQL detects deadlocks (SQLite runs one writer at a time)."""
    return pg_database


def _waiting_for_a_lock(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND wait_event_type = 'Lock'"
    ).fetchone()
    return bool(row and row[0])


def test_a_request_aborted_by_a_deadlock_runs_again_and_succeeds(
    server: LiveServer,
    runtime: Runtime,
    make_tenant: TenantFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = party(runtime, make_tenant())
    owner_vault = make_vault(runtime, owner, size_gb=100)
    backup_id = stored_backup(runtime, owner, owner_vault, size_bytes=GiB)
    recipients = [party(runtime, make_tenant()) for _ in range(2)]
    vault_ids = [make_vault(runtime, r, size_gb=10) for r in recipients]
    run(runtime, members.add_members, owner.actor, backup_id, [r.project_id for r in recipients])
    for who, vault_id in zip(recipients, vault_ids, strict=True):
        set_status(runtime, who, backup_id, "accepted", vault_id)
    first, second = sorted(vault_ids)

    url = f"{server.url}/v3/{owner.project_id}/backups/{backup_id}"
    headers = sign("DELETE", url, owner.creds.access_key, owner.creds.secret_key)
    answers: list[httpx.Response] = []
    dsn = runtime.database.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as blocker, psycopg.connect(dsn, autocommit=True) as watcher:
        blocker.execute("SET deadlock_timeout = '20s'")
        blocker.execute("SELECT id FROM cbr_vaults WHERE id = %s FOR UPDATE", (second,))
        request = threading.Thread(
            target=lambda: answers.append(httpx.delete(url, headers=headers, timeout=60))
        )
        with caplog.at_level(logging.WARNING, logger="opencbr.api.app"):
            request.start()
            deadline = time.monotonic() + 20
            while not _waiting_for_a_lock(watcher):
                assert time.monotonic() < deadline, "the request never waited for the vault"
                time.sleep(0.01)
            # The request holds `first` and waits for `second`; now wait for `first` too.
            blocker.execute("SELECT id FROM cbr_vaults WHERE id = %s FOR UPDATE", (first,))
            blocker.commit()
            request.join(timeout=60)

    assert [a.status_code for a in answers] == [204], [a.text for a in answers]
    assert any("database conflict" in r.getMessage() for r in caplog.records)
    with runtime.database.unit_of_work() as session:
        status = session.scalar(select(Backup.status).where(Backup.id == backup_id))
        left = session.scalar(
            select(func.count()).select_from(Member).where(Member.backup_id == backup_id)
        )
    assert (status, left) == ("deleting", 0)
    # Freed once: the aborted attempt's release was rolled back with it.
    assert [vault_row(runtime, v).used_bytes for v in vault_ids] == [0, 0]
