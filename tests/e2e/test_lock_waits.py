"""Requests and locks: waiting for a lock never starves the lock's holder, and reads do not
wait for writes.

An API process works on a bounded number of requests at once (`request_threads`); here it has
two. If ending a unit of work had to queue for those same threads, requests waiting for a
lock could take them all while the holder of the lock waited for one to commit: nothing would
move again until a lock or busy timeout. And a request with a safe method (GET) runs a
read-only unit of work: on SQLite it begins deferred and reads a WAL snapshot instead of
queueing for the single write lock (before, every GET took that lock with its first
statement, so reads waited for any write in flight).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
from sqlalchemy import select, update

from opencbr.api.runtime import build_runtime
from opencbr.cbr.models import Backup
from opencbr.core.context import Runtime
from opencbr.core.settings import Settings
from tests.conftest import ROOT_KEY, LiveServer, TenantFactory
from tests.e2e.signed import sign
from tests.integration.cbr.sharing_fixtures import Party, make_vault, party, stored_backup

CONCURRENT = 8


class _Contended(NamedTuple):
    owner: Party
    backup_id: str
    url_path: str
    settings: Settings  # of an API process with two request threads


@pytest.fixture
def contended(
    tmp_path: Path, database_url: str, make_tenant: TenantFactory, runtime: Runtime
) -> _Contended:
    owner = party(runtime, make_tenant())
    backup_id = stored_backup(runtime, owner, make_vault(runtime, owner))
    settings = Settings(
        data_dir=tmp_path / "data2", database_url=database_url, root_key=ROOT_KEY, request_threads=2
    )
    return _Contended(owner, backup_id, f"/v3/{owner.project_id}/backups/{backup_id}", settings)


def _call(server: LiveServer, method: str, at: _Contended, body: bytes = b"") -> httpx.Response:
    url = server.url + at.url_path
    creds = at.owner.creds
    headers = sign(method, url, creds.access_key, creds.secret_key, body=body)
    # A timeout below SQLite's 30 s busy wait: a request that waits for a lock fails the test.
    return httpx.request(method, url, content=body, headers=headers, timeout=20)


def test_lock_waiters_never_starve_the_lock_holder_of_a_thread(
    contended: _Contended, database_url: str, runtime: Runtime
) -> None:
    """Eight renames of one backup (each locks its row) arrive together."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite has one write lock, which a write takes with its first statement")

    def rename(server: LiveServer, n: int) -> httpx.Response:
        body = json.dumps({"backup": {"name": f"renamed-{n}"}}).encode()
        return _call(server, "PUT", contended, body)

    limited = build_runtime(contended.settings)
    try:
        with LiveServer(limited) as server, ThreadPoolExecutor(CONCURRENT) as pool:
            answers = list(pool.map(lambda n: rename(server, n), range(CONCURRENT)))
    finally:
        limited.database.dispose()

    assert [a.status_code for a in answers] == [200] * CONCURRENT
    with runtime.database.unit_of_work() as session:
        name = session.scalar(select(Backup.name).where(Backup.id == contended.backup_id))
    assert name in {f"renamed-{n}" for n in range(CONCURRENT)}


def test_reads_are_answered_while_a_write_holds_its_locks(
    contended: _Contended, runtime: Runtime
) -> None:
    """A write holds its locks on the backup (on SQLite, the database's write lock) while
    eight reads of it arrive: all are answered, with what was committed before the write."""
    limited = build_runtime(contended.settings)
    writer = runtime.database.sessions()
    try:
        with LiveServer(limited) as server:
            before = _call(server, "GET", contended).json()["backup"]["name"]
            renaming = update(Backup).where(Backup.id == contended.backup_id)
            writer.execute(renaming.values(name="in-flight"))
            with ThreadPoolExecutor(CONCURRENT) as pool:
                answers = list(
                    pool.map(lambda _: _call(server, "GET", contended), range(CONCURRENT))
                )
            writer.rollback()
    except httpx.TimeoutException:
        pytest.fail("a read waited for the write's locks")
    finally:
        writer.close()
        limited.database.dispose()

    assert [a.status_code for a in answers] == [200] * CONCURRENT
    assert {a.json()["backup"]["name"] for a in answers} == {before}
