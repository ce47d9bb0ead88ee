"""`opencbr disk extend`, `opencbr disk snapshot ...` and `opencbr disk bin ...`: growing a
disk, its snapshots and the disk recycle bin (the EVS calls of the same names)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from .client import ApiError, Client
from .common import JsonOpt, client, edge_errors
from .disk import disk_app, wait_job
from .output import print_record, print_rows

__all__ = ["bin_app", "snapshot_app"]

snapshot_app = typer.Typer(help="A disk's snapshots: point-in-time copies to roll back to.")
bin_app = typer.Typer(help="The disk recycle bin: deleted disks kept for a while when it is on.")
disk_app.add_typer(snapshot_app, name="snapshot")
disk_app.add_typer(bin_app, name="bin")
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until it is done.")]


def _snapshots(api: Client, suffix: str = "") -> str:
    return f"/v2/{api.project()}/cloudsnapshots{suffix}"


def _bin(api: Client, suffix: str = "") -> str:
    return f"/v3/{api.project()}/recycle-bin-volumes{suffix}"


@disk_app.command("extend")
@edge_errors
def extend(
    disk_id: str,
    size_gb: Annotated[int, typer.Option("--size-gb", help="The new, larger size in GB.")],
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Grow a disk (available or attached; never shrunk)."""
    api = client()
    body = {"os-extend": {"new_size": size_gb}}
    job_id = api.request("POST", f"/v2.1/{api.project()}/cloudvolumes/{disk_id}/action", body)[
        "job_id"
    ]
    if wait:
        wait_job(api, job_id)
    print_record({"id": disk_id, "size_gb": size_gb, "job_id": job_id}, as_json)


def _snapshot_row(snapshot: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "name", "status", "size", "volume_id", "created_at")
    return {key: snapshot[key] for key in keys}


def _wait_snapshot(api: Client, snapshot_id: str, timeout: float = 600.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        snapshot: dict[str, Any] = api.request("GET", _snapshots(api, f"/{snapshot_id}"))[
            "snapshot"
        ]
        if snapshot["status"] == "available":
            return snapshot
        if snapshot["status"] == "error":
            raise ApiError(400, "EVS.SNAPSHOT", f"snapshot {snapshot_id} failed", "")
        if time.monotonic() > deadline:
            raise ApiError(0, "CLI.0003", f"snapshot {snapshot_id} still {snapshot['status']}", "")
        time.sleep(0.2)


@snapshot_app.command("create")
@edge_errors
def snapshot_create(
    disk_id: str,
    name: Annotated[str, typer.Option("--name")] = "",
    force: Annotated[bool, typer.Option("--force", help="Snapshot an attached disk.")] = False,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Take a snapshot of a disk."""
    api = client()
    body = {"snapshot": {"volume_id": disk_id, "name": name, "force": force}}
    snapshot = api.create(_snapshots(api), body)["snapshot"]
    if wait:
        snapshot = _wait_snapshot(api, snapshot["id"])
    print_record(_snapshot_row(snapshot), as_json)


@snapshot_app.command("list")
@edge_errors
def snapshot_list(
    disk_id: Annotated[str | None, typer.Option("--disk", help="Only this disk's.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the project's snapshots (newest first)."""
    api = client()
    params = {"volume_id": disk_id} if disk_id else None
    found = api.request("GET", _snapshots(api, "/detail"), params=params)["snapshots"]
    rows = [_snapshot_row(s) for s in found]
    print_rows(rows, ["id", "name", "status", "size", "volume_id", "created_at"], as_json)


@snapshot_app.command("rollback")
@edge_errors
def snapshot_rollback(snapshot_id: str, wait: WaitOpt = True, as_json: JsonOpt = False) -> None:
    """Put a snapshot's contents back onto its disk (which must be available)."""
    api = client()
    body: dict[str, Any] = {"rollback": {}}
    disk_id = api.request("POST", _snapshots(api, f"/{snapshot_id}/rollback"), body)["rollback"][
        "volume_id"
    ]
    if wait:
        _wait_snapshot(api, snapshot_id)
    print_record({"snapshot_id": snapshot_id, "volume_id": disk_id}, as_json)


@snapshot_app.command("delete")
@edge_errors
def snapshot_delete(snapshot_id: str, as_json: JsonOpt = False) -> None:
    """Delete a snapshot."""
    api = client()
    api.request("DELETE", _snapshots(api, f"/{snapshot_id}"))
    print_record({"id": snapshot_id, "deleted": True}, as_json)


def _bin_row(volume: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": volume["id"],
        "name": volume["name"],
        "size_gb": volume["size"],
        "deleted_at": volume["pre_deleted_at"],
        "purge_at": volume["plan_delete_at"],
    }


@bin_app.command("list")
@edge_errors
def bin_list(as_json: JsonOpt = False) -> None:
    """List the disks in the recycle bin."""
    api = client()
    rows = [_bin_row(v) for v in api.request("GET", _bin(api, "/detail"))["volumes"]]
    print_rows(rows, ["id", "name", "size_gb", "deleted_at", "purge_at"], as_json)


@bin_app.command("restore")
@edge_errors
def bin_restore(disk_id: str, as_json: JsonOpt = False) -> None:
    """Take a disk out of the recycle bin (available again, with its data)."""
    api = client()
    api.request("POST", _bin(api, f"/{disk_id}/revert"))
    print_record({"id": disk_id, "restored": True}, as_json)


@bin_app.command("delete")
@edge_errors
def bin_delete(disk_id: str, as_json: JsonOpt = False) -> None:
    """Delete a disk in the recycle bin for good."""
    api = client()
    api.request("DELETE", _bin(api, f"/{disk_id}"))
    print_record({"id": disk_id, "deleted": True}, as_json)


@bin_app.command("policy")
@edge_errors
def bin_policy(
    enable: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Turn the recycle bin on or off.")
    ] = None,
    threshold_days: Annotated[
        int | None, typer.Option("--threshold-days", help="Only disks at least this old (1-1000).")
    ] = None,
    keep_days: Annotated[
        int | None, typer.Option("--keep-days", help="Days a deleted disk is kept (1-365).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the recycle bin policy, or change it with the options given."""
    api = client()
    change = {
        name: value
        for name, value in (
            ("switch", enable),
            ("threshold_time", threshold_days),
            ("keep_time", keep_days),
        )
        if value is not None
    }
    if change:
        policy = api.request("PUT", _bin(api, "/policy"), change)
    else:
        policy = api.request("GET", _bin(api, "/policy"))
    print_record(policy, as_json)
