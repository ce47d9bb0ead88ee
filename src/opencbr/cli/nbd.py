"""`opencbr disk nbd ...` and `opencbr server nbd ...`: open and close NBD exports.

An export's URI (`nbd://HOST:PORT/NAME`) is what QEMU (`-drive file=URI,format=raw`),
`qemu-img`, `nbdcopy`, `nbdinfo` or the kernel's NBD client take. Its name is a secret:
anyone who can reach the NBD server with it can use the disk until the export is closed.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .client import Client
from .common import JsonOpt, client, edge_errors
from .output import print_json, print_record

__all__ = ["disk_nbd_app", "server_nbd_app"]

disk_nbd_app = typer.Typer(help="A disk's NBD export: open, close.", no_args_is_help=True)
server_nbd_app = typer.Typer(
    help="NBD exports of all a server's disks: open, close.", no_args_is_help=True
)
ReadOnlyOpt = Annotated[
    bool, typer.Option("--read-only", help="Export read-only (the disk stays available).")
]


def _body(read_only: bool) -> dict[str, Any]:
    return {"read_only": read_only}


@disk_nbd_app.command("open")
@edge_errors
def open_disk(disk_id: str, read_only: ReadOnlyOpt = False, as_json: JsonOpt = False) -> None:
    """Export a disk over NBD and print its URI (a read-write export makes it in-use)."""
    api = client()
    path = f"/v2/{api.project()}/cloudvolumes/{disk_id}/nbd"
    export = api.request("POST", path, _body(read_only))["export"]
    if as_json:
        print_json(export)
    else:
        print(export["uri"])


@disk_nbd_app.command("close")
@edge_errors
def close_disk(disk_id: str, as_json: JsonOpt = False) -> None:
    """End a disk's NBD export: its name stops working, open connections fail."""
    api = client()
    closed = api.request("DELETE", f"/v2/{api.project()}/cloudvolumes/{disk_id}/nbd")
    print_record(closed, as_json)


def _servers(api: Client, server_id: str) -> str:
    return f"/v1/{api.project()}/servers/{server_id}/nbd"


@server_nbd_app.command("open")
@edge_errors
def open_server(server_id: str, read_only: ReadOnlyOpt = False, as_json: JsonOpt = False) -> None:
    """Export every disk of a server; one URI per disk, in boot order (system disk first)."""
    api = client()
    exports = api.request("POST", _servers(api, server_id), _body(read_only))["exports"]
    if as_json:
        print_json(exports)
        return
    for export in exports:  # whole URIs, never shortened to a terminal's width
        print(export["volume_id"], export["uri"])


@server_nbd_app.command("close")
@edge_errors
def close_server(server_id: str, as_json: JsonOpt = False) -> None:
    """End the NBD exports of a server's disks."""
    api = client()
    print_record(api.request("DELETE", _servers(api, server_id)), as_json)
