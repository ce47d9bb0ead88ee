"""Sign-in throttling on real SQLite and PostgreSQL: per user name, in the database (so shared by
every process), growing locks, no password check while locked."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from opencbr.core.clock import utcnow
from opencbr.core.context import Runtime
from opencbr.core.db import Database
from opencbr.iam import service as iam
from opencbr.iam import throttle
from opencbr.iam.errors import LoginFailed, LoginThrottled
from opencbr.iam.models import LoginFailures
from tests.conftest import TenantFactory, unique

TTL = timedelta(hours=1)


def attempt(database: Database, name: str, password: str) -> str:
    """ "ok", or the error code of the refusal."""
    try:
        throttle.login(database, throttle.LoginRequest(name, password, TTL))
    except (LoginFailed, LoginThrottled) as error:
        return error.code
    return "ok"


def end_lock(database: Database) -> None:
    """As if the lock's time had passed."""
    with database.unit_of_work() as session:
        session.execute(update(LoginFailures).values(locked_until=utcnow() - timedelta(seconds=1)))


def test_five_failures_lock_the_name_without_checking_the_password(
    runtime: Runtime, make_tenant: TenantFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = make_tenant()
    db = runtime.database
    assert [attempt(db, creds.user_name, "wrong") for _ in range(5)] == ["IAM.0101"] * 5
    checked: list[str] = []
    real = iam.issue_token

    def spy(*args: Any, **kwargs: Any) -> Any:
        checked.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(iam, "issue_token", spy)
    with pytest.raises(LoginThrottled) as locked:
        throttle.login(db, throttle.LoginRequest(creds.user_name, creds.password, TTL))
    assert checked == []  # refused before any password check, even the right one
    assert 25 <= locked.value.retry_after <= throttle.FIRST_LOCK
    assert locked.value.status == 429

    # another user (same address, as every browser behind one proxy) is not affected
    other = make_tenant()
    assert attempt(db, other.user_name, other.password) == "ok"


def test_the_lock_grows_with_each_failure_after_it_and_success_clears_it(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    db = runtime.database
    for _ in range(5):
        attempt(db, creds.user_name, "wrong")
    end_lock(db)
    assert attempt(db, creds.user_name, "wrong") == "IAM.0101"
    with pytest.raises(LoginThrottled) as locked:
        throttle.login(db, throttle.LoginRequest(creds.user_name, "wrong", TTL))
    assert locked.value.retry_after > throttle.FIRST_LOCK  # twice the first lock
    assert [throttle.lock_seconds(n) for n in (4, 5, 6, 7, 30)] == [0, 30, 60, 120, 3600]
    end_lock(db)
    assert attempt(db, creds.user_name, creds.password) == "ok"
    assert [attempt(db, creds.user_name, "wrong") for _ in range(5)] == ["IAM.0101"] * 5


def test_unknown_names_are_throttled_alike(runtime: Runtime) -> None:
    name = unique("nobody")
    codes = [attempt(runtime.database, name, "guess") for _ in range(6)]
    assert codes == ["IAM.0101"] * 5 + ["IAM.0102"]


def test_every_process_sees_the_lock(
    runtime: Runtime, make_tenant: TenantFactory, database_url: str
) -> None:
    creds = make_tenant()
    other_process = Database(database_url)  # a second engine, as a second API process has
    try:
        for database in [runtime.database, other_process] * 2 + [runtime.database]:
            assert attempt(database, creds.user_name, "wrong") == "IAM.0101"
        assert attempt(other_process, creds.user_name, creds.password) == "IAM.0102"
    finally:
        other_process.dispose()


def test_concurrent_failures_are_all_counted(runtime: Runtime, make_tenant: TenantFactory) -> None:
    creds = make_tenant()
    codes: list[str] = []

    def guess() -> None:
        codes.append(attempt(runtime.database, creds.user_name, "wrong"))

    threads = [threading.Thread(target=guess) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == ["IAM.0101"] * 4
    with runtime.database.unit_of_work() as session:
        row = session.get(LoginFailures, throttle._digest(creds.user_name))
        assert row is not None
        assert row.failures == 4


def test_names_without_failures_for_a_day_are_forgotten(runtime: Runtime) -> None:
    old, new = unique("old"), unique("new")
    for _ in range(3):
        attempt(runtime.database, old, "guess")
    with runtime.database.unit_of_work() as session:
        session.execute(
            update(LoginFailures)
            .where(LoginFailures.name_digest == throttle._digest(old))
            .values(updated_at=utcnow() - timedelta(days=2))
        )
    attempt(runtime.database, new, "guess")
    with runtime.database.unit_of_work() as session:
        assert session.get(LoginFailures, throttle._digest(old)) is None
        assert session.get(LoginFailures, throttle._digest(new)) is not None
