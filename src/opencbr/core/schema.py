"""The database schema's revision: a new database is made at the newest revision by any process
that starts on it; an existing one is upgraded only on the operator's word (`opencbr db
upgrade`), never as a side effect of a process starting. A process refuses a database whose
schema is not the one its code expects, behind or ahead, instead of running on it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from .db import Database, migrate, migration_config
from .errors import AppError

__all__ = [
    "SchemaMismatch",
    "SchemaState",
    "ensure_schema",
    "schema_state",
    "upgrade_schema",
]

# sysexits EX_CONFIG, as for a store that cannot be used: the systemd units in deploy/ do not
# restart a process that ends with it.
EXIT_CONFIG = 78


class SchemaMismatch(AppError):
    status = 503
    code = "BackupService.9930"
    template = "The database schema is not the one this version of OpenCBR uses: {reason}."
    exit_code = EXIT_CONFIG


@dataclass(frozen=True)
class SchemaState:
    """The revisions the database is at (one per slice's branch) and the code's newest ones."""

    current: frozenset[str]
    heads: frozenset[str]
    known: frozenset[str]  # every revision the code has

    @property
    def is_new(self) -> bool:
        return not self.current

    @property
    def at_head(self) -> bool:
        return self.current == self.heads

    @property
    def unknown(self) -> frozenset[str]:
        """Revisions of the database that the code does not have: a newer version made them."""
        return self.current - self.known

    def problem(self) -> str | None:
        """Why a process cannot run on this database as it is, or None."""
        if self.is_new or self.at_head:
            return None
        if self.unknown:
            return (
                f"it is at revisions this version does not know ({', '.join(sorted(self.unknown))})"
                ": run the version of OpenCBR that made them"
            )
        return (
            f"it is at {', '.join(sorted(self.current))}, behind {', '.join(sorted(self.heads))}"
            ": run `opencbr db upgrade` (with every OpenCBR process stopped)"
        )


def schema_state(database: Database, locations: Sequence[Path]) -> SchemaState:
    scripts = ScriptDirectory.from_config(migration_config(locations))
    with database.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    return SchemaState(
        current=frozenset(current),
        heads=frozenset(scripts.get_heads()),
        known=frozenset(revision.revision for revision in scripts.walk_revisions()),
    )


def ensure_schema(database: Database, locations: Sequence[Path]) -> SchemaState:
    """Make a new database's schema at the newest revision; accept an existing one only at it.

    Raises `SchemaMismatch` for an existing database behind the code (or ahead of it)."""
    with _migration_lock(database):
        state = schema_state(database, locations)
        if state.is_new:
            migrate(database, locations)
            state = schema_state(database, locations)
    problem = state.problem()
    if problem is not None:
        raise SchemaMismatch(reason=problem)
    return state


def upgrade_schema(database: Database, locations: Sequence[Path]) -> SchemaState:
    """Bring the schema to the newest revision (`opencbr db upgrade`); a database at
    revisions the code does not know is refused, not touched."""
    with _migration_lock(database):
        state = schema_state(database, locations)
        if state.unknown:
            raise SchemaMismatch(reason=str(state.problem()))
        if not state.at_head:
            migrate(database, locations)
            state = schema_state(database, locations)
    return state


# Any fixed 64-bit number; PostgreSQL advisory locks are keyed by it.
_MIGRATION_LOCK_KEY = 0x0C0BACC0


@contextmanager
def _migration_lock(database: Database) -> Iterator[None]:
    """Processes starting together on a new database (N API processes, workers) make its
    schema one after the other; the later ones then find it at head. SQLite serialises
    writers by itself."""
    if database.is_sqlite:
        yield
        return
    with database.engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        try:
            yield
        finally:
            connection.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
            connection.commit()
