"""`opencbr db current` and `opencbr db upgrade`: the database schema's revision.

A process that starts on a new database makes its schema itself; an existing database behind
the code is upgraded here, with every OpenCBR process stopped, and only here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from .common import DatabaseUrlOpt, DataDirOpt, JsonOpt, edge_errors, make_settings
from .output import print_record

if TYPE_CHECKING:
    from pathlib import Path

    from opencbr.core.db import Database
    from opencbr.core.schema import SchemaState

__all__ = ["db_app"]

db_app = typer.Typer(help="The database schema.", no_args_is_help=True)


@contextmanager
def _database(data_dir: Path | None, database_url: str | None) -> Iterator[Database]:
    from opencbr.core.db import Database

    database = Database(make_settings(data_dir, database_url).effective_database_url)
    try:
        yield database
    finally:
        database.dispose()


def _record(state: SchemaState) -> dict[str, Any]:
    if state.is_new:
        status = "new"  # a process starting on it makes the schema
    elif state.at_head:
        status = "at head"
    elif state.unknown:
        status = "ahead"
    else:
        status = "behind"
    return {
        "status": status,
        "current": sorted(state.current),
        "head": sorted(state.heads),
    }


@db_app.command("current")
@edge_errors
def current(
    data_dir: DataDirOpt = None, database_url: DatabaseUrlOpt = None, as_json: JsonOpt = False
) -> None:
    """The schema's revisions and the newest ones; exits 0 when a process may start on it
    (new or at head), 78 when it is behind (run `opencbr db upgrade`) or ahead."""
    from opencbr.api.runtime import migration_locations
    from opencbr.core.schema import EXIT_CONFIG, schema_state

    with _database(data_dir, database_url) as database:
        state = schema_state(database, migration_locations())
    print_record(_record(state), as_json)
    if state.problem() is not None:
        raise typer.Exit(EXIT_CONFIG)


@db_app.command("upgrade")
@edge_errors
def upgrade(
    data_dir: DataDirOpt = None, database_url: DatabaseUrlOpt = None, as_json: JsonOpt = False
) -> None:
    """Bring the schema to the newest revision (stop every OpenCBR process first)."""
    from opencbr.api.runtime import migration_locations
    from opencbr.core.schema import upgrade_schema

    with _database(data_dir, database_url) as database:
        state = upgrade_schema(database, migration_locations())
    print_record(_record(state), as_json)
