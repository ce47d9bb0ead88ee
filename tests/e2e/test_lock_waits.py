"""Requests that wait for a row lock never stop the request holding it from committing.

An API process works on a bounded number of requests at once (`request_threads`). If ending a
unit of work had to queue for those same threads, requests waiting for a lock could take them
all while the holder of the lock waited for one to commit: nothing would move again until a
lock or busy timeout. Here the process has two request threads and eight renames of one backup
(each locks its row) arrive together; all of them must be answered promptly.

PostgreSQL only: SQLite has one write lock, which a request takes with its first statement,
so there every request in flight already waits for the one before it.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from opencbr.api.runtime import build_runtime
from opencbr.cbr.models import Backup
from opencbr.core.context import Runtime
from opencbr.core.settings import Settings
from tests.conftest import ROOT_KEY, LiveServer, TenantFactory
from tests.e2e.signed import sign
from tests.integration.cbr.sharing_fixtures import make_vault, party, stored_backup

RENAMES = 8


@pytest.fixture
def database_url(pg_database: str) -> str:
    return pg_database


def test_lock_waiters_never_starve_the_lock_holder_of_a_thread(
    tmp_path: Path, database_url: str, make_tenant: TenantFactory, runtime: Runtime
) -> None:
    owner = party(runtime, make_tenant())
    backup_id = stored_backup(runtime, owner, make_vault(runtime, owner))
    settings = Settings(
        data_dir=tmp_path / "data2", database_url=database_url, root_key=ROOT_KEY, request_threads=2
    )
    url_path = f"/v3/{owner.project_id}/backups/{backup_id}"

    def rename(server: LiveServer, n: int) -> httpx.Response:
        body = json.dumps({"backup": {"name": f"renamed-{n}"}}).encode()
        url = server.url + url_path
        headers = sign("PUT", url, owner.creds.access_key, owner.creds.secret_key, body=body)
        return httpx.put(url, content=body, headers=headers, timeout=20)

    limited = build_runtime(settings)
    try:
        with LiveServer(limited) as server, ThreadPoolExecutor(RENAMES) as pool:
            answers = list(pool.map(lambda n: rename(server, n), range(RENAMES)))
    finally:
        limited.database.dispose()

    assert [a.status_code for a in answers] == [200] * RENAMES
    with runtime.database.unit_of_work() as session:
        name = session.scalar(select(Backup.name).where(Backup.id == backup_id))
    assert name in {f"renamed-{n}" for n in range(RENAMES)}
