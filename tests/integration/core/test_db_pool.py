"""The connection pool on real PostgreSQL: a connection that died while idle is replaced, and
statements are planned without parallel workers; read-only units of work and reads of plain
rows on both databases."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import InternalError

from opencbr.core import db
from opencbr.core.context import Runtime
from opencbr.core.db import Database, rows_of
from opencbr.core.ids import new_hex32
from opencbr.iam.models import Domain


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


def test_a_read_only_unit_of_work_refuses_to_write_on_postgresql(pg_database: str) -> None:
    database = Database(pg_database)
    try:
        with database.read_sessions() as session:
            assert session.execute(text("SHOW transaction_read_only")).scalar_one() == "on"
            with pytest.raises(InternalError, match="read-only transaction"):
                session.execute(text("CREATE TEMPORARY TABLE scratch (n int)"))
        with database.unit_of_work() as session:  # the pooled connection writes again
            assert session.execute(text("SHOW transaction_read_only")).scalar_one() == "off"
    finally:
        database.dispose()


def test_a_read_only_unit_of_work_leaves_sqlites_write_lock_free(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with database.unit_of_work() as session:
            session.execute(text("CREATE TABLE t (n int)"))
            session.execute(text("INSERT INTO t VALUES (1)"))
        with database.read_sessions() as reader:
            assert reader.execute(text("SELECT n FROM t")).scalar_one() == 1
            with database.unit_of_work() as writer:  # would wait 30 s behind BEGIN IMMEDIATE
                writer.execute(text("UPDATE t SET n = 2"))
            assert reader.execute(text("SELECT n FROM t")).scalar_one() == 1  # its snapshot
    finally:
        database.dispose()


def test_the_service_plans_without_parallel_workers_on_postgresql(pg_database: str) -> None:
    """Its statements are short index walks; starting parallel workers for one (a page of
    backups ordered by date) took most of its time while other requests kept the CPUs busy."""
    database = Database(pg_database)
    show = text("SHOW max_parallel_workers_per_gather")
    try:
        with database.read_sessions() as session:
            assert session.execute(show).scalar_one() == "0"
        with database.unit_of_work() as session:
            assert session.execute(show).scalar_one() == "0"
    finally:
        database.dispose()


def test_rows_read_on_the_connection_show_what_the_session_holds_unwritten(
    runtime: Runtime,
) -> None:
    """`rows_of` reads past the ORM, as the ORM's own reads do: after the session's pending
    changes are written, in its transaction (then rolled back)."""
    domain_id = new_hex32()
    named = select(Domain.name).where(Domain.id == domain_id)
    with runtime.database.sessions() as session:
        session.add(Domain(id=domain_id, name=f"rows-{domain_id[:8]}"))
        assert rows_of(session).execute(named).scalar_one() == f"rows-{domain_id[:8]}"
        session.rollback()
        assert rows_of(session).execute(named).first() is None
