"""Reads are answered while a write holds its locks, on SQLite as on PostgreSQL.

A request with a safe method (GET) runs a read-only unit of work. On SQLite that one begins
deferred and reads a snapshot (WAL) instead of queueing for the single write lock; before,
every GET took the write lock with its first statement, so reads waited for any write in
flight and, with more of them than request threads, could hold every thread the writer's
request needed. Here the server has two request threads, a write holds its locks on the
backup (on SQLite, the database's write lock) and eight reads of that backup arrive: all are
answered while the write is still open, with what was committed before it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from opencbr.api.runtime import build_runtime
from opencbr.cbr.models import Backup
from opencbr.core.context import Runtime
from opencbr.core.settings import Settings
from tests.conftest import ROOT_KEY, LiveServer, TenantFactory
from tests.e2e.signed import sign
from tests.integration.cbr.sharing_fixtures import make_vault, party, stored_backup

READS = 8


def test_reads_are_answered_while_a_write_holds_its_locks(
    tmp_path: Path, database_url: str, make_tenant: TenantFactory, runtime: Runtime
) -> None:
    owner = party(runtime, make_tenant())
    backup_id = stored_backup(runtime, owner, make_vault(runtime, owner))
    settings = Settings(
        data_dir=tmp_path / "data2", database_url=database_url, root_key=ROOT_KEY, request_threads=2
    )
    url_path = f"/v3/{owner.project_id}/backups/{backup_id}"

    def show(server: LiveServer) -> httpx.Response:
        url = server.url + url_path
        headers = sign("GET", url, owner.creds.access_key, owner.creds.secret_key)
        return httpx.get(url, headers=headers, timeout=20)  # below SQLite's 30 s busy wait

    served = build_runtime(settings)
    writer = runtime.database.sessions()
    try:
        with LiveServer(served) as server:
            before = show(server).json()["backup"]["name"]
            writer.execute(update(Backup).where(Backup.id == backup_id).values(name="in-flight"))
            with ThreadPoolExecutor(READS) as pool:
                answers = list(pool.map(lambda _: show(server), range(READS)))
            writer.rollback()
    except httpx.TimeoutException:
        pytest.fail("a read waited for the write's locks")
    finally:
        writer.close()
        served.database.dispose()

    assert [a.status_code for a in answers] == [200] * READS
    assert {a.json()["backup"]["name"] for a in answers} == {before}
