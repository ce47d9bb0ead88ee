"""Disaster recovery verbs: `opencbr admin recover`, `export-recovery-key`, `rotate-root-key`,
`catalogue sync`, `db backup`, and the operator's `opencbr store verify`.

They work on the database and the store directly (no server needed); stop the service before
`recover` and `rotate-root-key` (a running process keeps the old state in memory)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .admin import admin_app
from .common import DatabaseUrlOpt, DataDirOpt, JsonOpt, edge_errors, make_settings
from .output import console, err_console, print_json, print_record

if TYPE_CHECKING:
    from opencbr.core.context import Runtime

__all__ = ["store_app"]

catalogue_app = typer.Typer(help="The catalogue the store carries.", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
store_app = typer.Typer(help="The chunk store (operator verbs).", no_args_is_help=True)
admin_app.add_typer(catalogue_app, name="catalogue")
admin_app.add_typer(db_app, name="db")

StoreUrlOpt = Annotated[
    str | None,
    typer.Option("--store-url", envvar="OPENCBR_STORE_URL", help="Chunk store location."),
]


@contextmanager
def _runtime(
    data_dir: Path | None, database_url: str | None, store_url: str | None = None
) -> Iterator[Runtime]:
    from opencbr.api.runtime import build_runtime

    runtime = build_runtime(make_settings(data_dir, database_url, store_url=store_url))
    try:
        yield runtime
    finally:
        runtime.database.dispose()


@admin_app.command("recover")
@edge_errors
def recover(
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    store_url: StoreUrlOpt = None,
    recovery_key: Annotated[
        Path | None, typer.Option("--recovery-key", help="The recovery key file (see export).")
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Add what is missing to a database that has tenants.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild the database from the store: tenants, keys, vaults, backups, shares."""
    from opencbr.cbr.catalogue_keys import RecoveryKey
    from opencbr.cbr.recovery import recover as run_recovery

    key = RecoveryKey.load(recovery_key) if recovery_key else None
    started = time.monotonic()

    def progress(kind: str, done: int, total: int) -> None:
        if not as_json:
            err_console.print(f"{kind}: {done}/{total}")

    with _runtime(data_dir, database_url, store_url) as runtime:
        report = run_recovery(runtime, recovery_key=key, merge=merge, progress=progress)
    result = {**report.as_dict(), "seconds": round(time.monotonic() - started, 2)}
    if as_json:
        print_json(result)
        return
    print_record({k: str(v) for k, v in result["recovered"].items()}, False)
    for line in report.skipped:
        console.print(f"[yellow]not recovered[/yellow] {line}")
    console.print(f"recovered in {result['seconds']} s")


@admin_app.command("export-recovery-key")
@edge_errors
def export_recovery_key(
    path: Annotated[Path, typer.Argument(help="New file for the recovery key (keep it offline).")],
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    store_url: StoreUrlOpt = None,
) -> None:
    """Make a recovery key: with it alone (no root key, no database) the store recovers.
    A new one replaces the one before."""
    from opencbr.cbr.catalogue import catalogue_keys
    from opencbr.cbr.catalogue_keys import RecoveryKey
    from opencbr.cbr.dataplane import chunk_store

    key = RecoveryKey.generate()
    key.save(path)
    with _runtime(data_dir, database_url, store_url) as runtime:
        catalogue_keys(runtime).add_recovery(chunk_store(runtime).catalogue, key.public)
    console.print(f"recovery key written to {path}: keep it offline, away from the data directory")


@admin_app.command("rotate-root-key")
@edge_errors
def rotate_root_key(data_dir: DataDirOpt = None, database_url: DatabaseUrlOpt = None) -> None:
    """Seal every secret by a new root key (stop the service first; run again if interrupted)."""
    from opencbr.cbr.root_rotation import rotate_root_key as rotate

    with _runtime(data_dir, database_url) as runtime:
        count = rotate(runtime)
    console.print(f"root key replaced; {count} sealed values moved to it")


@catalogue_app.command("sync")
@edge_errors
def catalogue_sync(
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write every tenant's, scope's and backup's record into the store (a store made before
    the catalogue; or after restoring the database from a dump)."""
    from opencbr.cbr.catalogue import escrow_all

    with _runtime(data_dir, database_url) as runtime:
        counts = escrow_all(runtime)
    print_record(counts, as_json)


@db_app.command("backup")
@edge_errors
def db_backup(
    path: Annotated[Path, typer.Argument(help="New file for the copy.")],
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """A consistent copy of the SQLite database while the service runs (PostgreSQL: pg_dump)."""
    from opencbr.core.db_backup import backup_sqlite

    settings = make_settings(data_dir, database_url)
    size = backup_sqlite(settings.effective_database_url, path)
    console.print(f"database copied to {path} ({size} bytes)")


@store_app.command("verify")
@edge_errors
def store_verify(
    deep: Annotated[
        bool, typer.Option("--deep", help="Also decrypt and hash every block (reads all data).")
    ] = False,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the store; mark every damaged backup `error`. Exit 0 when clean, 7 on damage."""
    from opencbr.cbr.scrub import scrub

    with _runtime(data_dir, database_url) as runtime:
        result = scrub(runtime, deep=deep)
    if as_json:
        print_json(result.as_dict())
    else:
        _print_scrub(result.as_dict())
    if not result.ok:
        raise typer.Exit(7)


def _print_scrub(summary: dict[str, object]) -> None:
    checked = summary["checked"]
    assert isinstance(checked, dict)
    console.print(", ".join(f"{k}: {v}" for k, v in checked.items()))
    errors = summary["errors"]
    damaged = summary["damaged_backups"]
    assert isinstance(errors, list)
    assert isinstance(damaged, list)
    for error in errors:
        console.print(f"[red]damaged[/red] {error}")
    for item in damaged:
        console.print(f"[red]backup marked error[/red] {item['backup_id']} ({item['name']})")
    console.print("[green]store is clean[/green]" if summary["ok"] else "[red]damage found[/red]")
