"""`opencbr disk register` and `opencbr disk sources`: external disks (NBD sources)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .common import JsonOpt, client, edge_errors
from .disk import AzOpt, NameOpt, disk_app
from .output import print_record, print_rows

__all__ = ["register", "sources"]


def _row(volume: dict[str, Any]) -> dict[str, Any]:
    source = volume["external_source"]
    return {
        "id": volume["id"],
        "name": volume["name"],
        "status": volume["status"],
        "size_gb": volume["size"],
        "size_bytes": source["size_bytes"],
        "source": source["uri"],
        "bitmap": source["bitmap"],
        "tls": source["tls"],
        "created_at": volume["created_at"],
    }


@disk_app.command("register")
@edge_errors
def register(
    name: NameOpt,
    nbd: Annotated[
        str,
        typer.Option(
            "--nbd", help="NBD URI: nbd://HOST:PORT/EXPORT, nbd+unix:///EXPORT?socket=PATH, nbds..."
        ),
    ],
    bitmap: Annotated[
        str, typer.Option("--bitmap", help="Persistent dirty bitmap for incrementals.")
    ] = "",
    tls_psk: Annotated[
        str, typer.Option("--tls-psk", help="TLS PSK file (a path on the OpenCBR server).")
    ] = "",
    az: AzOpt = "az1",
    as_json: JsonOpt = False,
) -> None:
    """Register a disk that lives in a hypervisor, reached over NBD (an external disk)."""
    api = client()
    volume = {
        "name": name,
        "nbd_uri": nbd,
        "bitmap": bitmap,
        "tls_psk_file": tls_psk,
        "availability_zone": az,
    }
    answer = api.create(f"/v2/{api.project()}/cloudvolumes/external", {"volume": volume})
    print_record(_row(answer["volume"]), as_json)


@disk_app.command("sources")
@edge_errors
def sources(as_json: JsonOpt = False) -> None:
    """List the project's external disks with their NBD sources."""
    api = client()
    volumes = api.request("GET", f"/v2/{api.project()}/cloudvolumes/external")["volumes"]
    rows = [_row(v) for v in volumes]
    print_rows(rows, ["id", "name", "status", "size_gb", "source", "bitmap"], as_json)
