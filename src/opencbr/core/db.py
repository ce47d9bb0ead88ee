"""Database engine, sessions and the unit of work.

One unit of work per request or job: services never commit; the caller's `unit_of_work`
commits once at the end or rolls back on any exception.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, MetaData, create_engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from .files import private_directory, private_file

__all__ = [
    "Base",
    "Database",
    "is_transient_conflict",
    "migrate",
    "migration_config",
    "rows_of",
]

# PostgreSQL aborts one transaction to break a deadlock (40P01) or a serialization conflict
# (40001); the aborted transaction changed nothing and may simply run again.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})

# A pooled connection idle for longer than this is pinged before it is used again.
PING_AFTER_IDLE_SECONDS = 5.0

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def is_transient_conflict(error: BaseException) -> bool:
    """Whether `error` is a database conflict after which the whole transaction can be rerun."""
    return isinstance(error, DBAPIError) and (
        getattr(error.orig, "sqlstate", None) in TRANSIENT_SQLSTATES
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def rows_of(session: Session) -> Connection:
    """The connection of the session's transaction, for a statement read as plain rows: the
    ORM's handling of a statement costs more CPU than a short one takes to run, and is of no
    use when no object comes back. As the ORM's own reads do, it first writes what the
    session holds unwritten, so the rows show it."""
    session.flush()
    return session.connection()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


# The service's statements are index lookups and short index walks. PostgreSQL plans some of
# them (a page of 50 backups ordered by date) with parallel workers, and starting the workers
# cost far more than the statement itself (bench/README.md), while the other requests in
# flight already keep the CPUs busy. So the service's connections plan without them.
_NO_PARALLEL = "-c max_parallel_workers_per_gather=0"

# The execution option of a read-only unit of work's connections (see `Database`).
READ_ONLY = "opencbr_read_only"


def _sqlite_begin(conn: Any) -> None:
    # SQLite's single writer: a unit of work that may write takes the write lock at BEGIN, so
    # that a read-then-write transaction never fails half-way with "database is locked" on
    # upgrade. A read-only one begins deferred: in WAL mode it reads a snapshot and neither
    # waits for the writer nor holds it up.
    read_only = conn.get_execution_options().get(READ_ONLY, False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection that sat idle before handing it out again (a database restart
    leaves the pool's connections dead). Busy connections are not pinged: a ping on every
    checkout is one more round trip per request, about a quarter of a short request's CPU."""

    @event.listens_for(engine, "checkin")
    def stamp(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool then discards it and connects afresh
            raise DisconnectionError("an idle pooled connection is gone") from exc


# SQLite gives its -wal, -shm and -journal files the database file's own mode.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def _private_sqlite_files(path: Path) -> None:
    """The database file made (or narrowed to) 0600 before SQLite opens it, so that SQLite,
    which would create it 0644 less the umask, creates its side files 0600 too."""
    private_directory(path.parent)
    private_file(path)
    for suffix in SQLITE_SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            private_file(side)


class Database:
    """An engine plus its session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                _private_sqlite_files(Path(path))
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
            # Let SQLAlchemy, not pysqlite, issue BEGIN (see the SQLAlchemy SQLite docs).
            event.listen(
                self.engine,
                "connect",
                lambda dbapi_conn, _rec: setattr(dbapi_conn, "isolation_level", None),
            )
            event.listen(self.engine, "begin", _sqlite_begin)
            read_engine: Engine = self.engine.execution_options(**{READ_ONLY: True})
        else:
            self.engine = create_engine(
                url, pool_size=10, max_overflow=20, connect_args={"options": _NO_PARALLEL}
            )
            read_engine = create_engine(
                url,
                pool_size=10,
                max_overflow=20,
                isolation_level="AUTOCOMMIT",
                connect_args={"options": f"{_NO_PARALLEL} -c default_transaction_read_only=on"},
            )
            for engine in (self.engine, read_engine):
                _ping_when_idle(engine)
        self.read_engine = read_engine
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # For units of work that only read (safe HTTP methods). On SQLite they do not take the
        # write lock. On PostgreSQL they run on connections of their own that refuse writes,
        # without a transaction: each statement sees what was committed before it, as it
        # would inside one at READ COMMITTED, minus the BEGIN and COMMIT round trips.
        self.read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def reads_autocommit(self) -> bool:
        """Whether read units of work run without a transaction (nothing to end)."""
        return not self.is_sqlite

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A session whose work commits once at the end, or not at all."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()


def migration_config(version_locations: Sequence[Path]) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.set_main_option("version_locations", " ".join(str(p) for p in version_locations))
    config.set_main_option("path_separator", "space")
    return config


def migrate(database: Database, version_locations: Sequence[Path]) -> None:
    """Bring the schema to the newest revision of every slice.

    Each slice has its own Alembic branch, labelled with the slice's name (its migrations
    folder's parent). Branches are upgraded one after another in the order given — lower
    slices first — so a slice's tables can reference those of the slices below it.
    """
    config = migration_config(version_locations)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        for location in version_locations:
            label = location.name if location.parent.name == "migrations" else location.parent.name
            if any(location.glob(f"{label}_*.py")):
                command.upgrade(config, f"{label}@head")
