"""The connection pool on real PostgreSQL: a connection that died while idle is replaced."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from opencbr.core import db
from opencbr.core.db import Database


def _backend_pid(database: Database) -> int:
    with database.unit_of_work() as session:
        pid: int = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return pid


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_connection_killed_while_idle_is_replaced(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(pg_database)
    try:
        first = _backend_pid(database)
        _terminate(pg_database, first)  # as a database restart would
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
        second = _backend_pid(database)
        assert second != first
    finally:
        database.dispose()


def test_a_busy_connection_is_not_pinged(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within the idle limit the pooled connection is handed out as it is, without a round
    trip: the same server process serves the next unit of work."""
    database = Database(pg_database)
    pings: list[object] = []
    monkeypatch.setattr(database.engine.dialect, "do_ping", pings.append)
    try:
        assert _backend_pid(database) == _backend_pid(database)
        assert pings == []
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
        _backend_pid(database)
        assert len(pings) == 1
    finally:
        database.dispose()
