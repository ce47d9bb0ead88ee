"""`opencbr backup files ls|get`: browse and download the files inside a disk backup without
restoring it (file-level restore). `/` lists the disk's filesystems (`part1`, ... or `disk`);
a directory downloads as a tar archive. The first call on a backup waits while the service
starts the backup's file browser (seconds); the following ones answer at once."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Annotated, Any

import typer

from .client import Client, Profile
from .common import JsonOpt, edge_errors
from .output import console, print_json, print_rows

__all__ = ["files_app"]

files_app = typer.Typer(
    help="Files inside a disk backup: list and download them (no restore).", no_args_is_help=True
)
BackupArg = Annotated[str, typer.Argument(help="Disk backup id (UUID).")]
FIRST_CALL_SECONDS = 300.0
ENTRY_COLUMNS = ["name", "type", "size", "mode", "uid", "gid", "mtime", "target"]
FILESYSTEM_COLUMNS = ["name", "fstype", "size", "label"]


def _client() -> Client:
    return Client(Profile.load(), timeout=FIRST_CALL_SECONDS)


def _base(api: Client, backup_id: str) -> str:
    return f"/opencbr/v1/{api.project()}/backups/{backup_id}/files"


@files_app.command("ls")
@edge_errors
def list_files(
    backup_id: BackupArg,
    path: Annotated[str, typer.Argument(help="Path in the backup, e.g. /part1/etc.")] = "/",
    as_json: JsonOpt = False,
) -> None:
    """List a directory of a backup (`/`: its partition table and filesystems)."""
    api = _client()
    listing: dict[str, Any] = api.request("GET", _base(api, backup_id), params={"path": path})
    if as_json:
        print_json(listing)
        return
    if listing["type"] == "disk":
        console.print(f"partition table: {listing['partition_table']}", highlight=False)
        print_rows(listing["entries"], FILESYSTEM_COLUMNS, False)
        return
    print_rows(listing["entries"], ENTRY_COLUMNS, False)


@files_app.command("get")
@edge_errors
def get_file(
    backup_id: BackupArg,
    path: Annotated[str, typer.Argument(help="File or directory in the backup.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Where to write (default: its name here; a directory: NAME.tar)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Download a file, or a directory as a tar archive."""
    api = _client()
    base = _base(api, backup_id)
    listing: dict[str, Any] = api.request("GET", base, params={"path": path})
    is_directory = listing["type"] == "directory"
    name = posixpath.basename(listing["path"].rstrip("/")) or "backup"
    target = out or Path(name + (".tar" if is_directory else ""))
    what = "archive" if is_directory else "content"
    partial = target.with_name(f".{target.name}.part")
    written = 0
    try:
        with partial.open("wb") as handle:
            for chunk in api.download(f"{base}/{what}", {"path": path}):
                handle.write(chunk)
                written += len(chunk)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    result = {
        "path": listing["path"],
        "out": str(target),
        "bytes": written,
        "archive": is_directory,
    }
    if as_json:
        print_json(result)
    else:
        console.print(f"{listing['path']} -> {target} ({written} bytes)", highlight=False)
