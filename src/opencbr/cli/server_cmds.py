"""`opencbr server ...`: compute instance records and their disks (our `/v1/{p}/servers` API)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from .client import ApiError, Client
from .common import JsonOpt, client, edge_errors
from .output import print_json, print_new_id, print_record, print_rows

__all__ = ["server_app"]

server_app = typer.Typer(
    help="Servers: create with disks, attach, stop, start.", no_args_is_help=True
)


def _servers(api: Client, suffix: str = "") -> str:
    return f"/v1/{api.project()}/servers{suffix}"


def _show(server: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(server)
        return
    disks = server.pop("volumes_attached", [])
    print_record(server, False)
    print_rows(disks, ["device", "id", "name", "size", "status", "encrypted"], False, "Disks")


def _wait_built(api: Client, server_id: str, timeout: float = 600.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        server: dict[str, Any] = api.request("GET", _servers(api, f"/{server_id}"))["server"]
        if server["status"] != "BUILD":
            if server["status"] == "ERROR":
                raise ApiError(400, "EVS.BUILD", f"server {server_id} failed to build", "")
            return server
        if time.monotonic() > deadline:
            raise ApiError(0, "CLI.0003", f"server {server_id} still BUILD", "")
        time.sleep(0.2)


@server_app.command("create")
@edge_errors
def create(
    name: Annotated[str, typer.Option("--name", help="Server name.")],
    system_size_gb: Annotated[
        int | None, typer.Option("--system-size-gb", help="New system disk size in GB.")
    ] = None,
    system_disk: Annotated[
        str | None, typer.Option("--system-disk", help="Existing disk id as system disk.")
    ] = None,
    data_size_gb: Annotated[
        list[int] | None, typer.Option("--data-size-gb", help="New data disk (GB); repeatable.")
    ] = None,
    data_disk: Annotated[
        list[str] | None, typer.Option("--data-disk", help="Existing disk id; repeatable.")
    ] = None,
    encrypted: Annotated[bool, typer.Option("--encrypted", help="Encrypt new disks.")] = False,
    kms_key: Annotated[str | None, typer.Option("--kms-key", help="KMS key for new disks.")] = None,
    az: Annotated[str, typer.Option("--az")] = "az1",
    flavor: Annotated[str, typer.Option("--flavor")] = "s1.small",
    wait: Annotated[bool, typer.Option("--wait/--no-wait")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Create a server with a system disk and data disks (new or existing)."""
    if (system_size_gb is None) == (system_disk is None):
        raise typer.BadParameter("give exactly one of --system-size-gb and --system-disk")
    crypto: dict[str, Any] = {}
    if encrypted or kms_key:
        crypto = {"encrypted": True, "kms_key_id": kms_key}
    system = {"volume_id": system_disk} if system_disk else {"size": system_size_gb, **crypto}
    data = [{"size": size, **crypto} for size in data_size_gb or []]
    data += [{"volume_id": disk_id} for disk_id in data_disk or []]
    body = {
        "server": {
            "name": name,
            "availability_zone": az,
            "flavor": flavor,
            "system_disk": system,
            "data_disks": data,
        }
    }
    api = client()
    server = api.create(_servers(api), body)["server"]
    if wait:
        server = _wait_built(api, server["id"])
    _show(server, as_json)
    if not as_json:
        print_new_id("server", server["id"])


@server_app.command("list")
@edge_errors
def list_servers(as_json: JsonOpt = False) -> None:
    """List the project's servers."""
    api = client()
    found = api.request("GET", _servers(api))["servers"]
    rows = [{**s, "disks": len(s["volumes_attached"])} for s in found]
    print_rows(rows, ["id", "name", "status", "availability_zone", "disks"], as_json)


@server_app.command("show")
@edge_errors
def show(server_id: str, as_json: JsonOpt = False) -> None:
    """Show a server and its disks."""
    api = client()
    _show(api.request("GET", _servers(api, f"/{server_id}"))["server"], as_json)


@server_app.command("attach")
@edge_errors
def attach(server_id: str, disk_id: str, as_json: JsonOpt = False) -> None:
    """Attach an available disk to a server."""
    api = client()
    body = {"volume_id": disk_id}
    volume = api.request("POST", _servers(api, f"/{server_id}/attach"), body)["volume"]
    print_record({"id": volume["id"], "status": volume["status"]}, as_json)


@server_app.command("detach")
@edge_errors
def detach(server_id: str, disk_id: str, as_json: JsonOpt = False) -> None:
    """Detach a disk from a server (the system disk only when stopped)."""
    api = client()
    body = {"volume_id": disk_id}
    volume = api.request("POST", _servers(api, f"/{server_id}/detach"), body)["volume"]
    print_record({"id": volume["id"], "status": volume["status"]}, as_json)


@server_app.command("stop")
@edge_errors
def stop(server_id: str, as_json: JsonOpt = False) -> None:
    """Stop a server."""
    api = client()
    _show(api.request("POST", _servers(api, f"/{server_id}/stop"))["server"], as_json)


@server_app.command("start")
@edge_errors
def start(server_id: str, as_json: JsonOpt = False) -> None:
    """Start a stopped server."""
    api = client()
    _show(api.request("POST", _servers(api, f"/{server_id}/start"))["server"], as_json)


@server_app.command("delete")
@edge_errors
def delete(
    server_id: str,
    with_disks: Annotated[bool, typer.Option("--with-disks", help="Delete its disks too.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete a server; its disks are detached, or deleted with --with-disks."""
    api = client()
    params = {"delete_disks": with_disks}
    answer = api.request("DELETE", _servers(api, f"/{server_id}"), params=params)
    print_record({"id": server_id, "deleted": True, "disk_jobs": answer["job_ids"]}, as_json)
