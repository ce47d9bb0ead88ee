"""`opencbr backup ...`, `opencbr restore`, `opencbr oplog ...` and `opencbr job show`.

Backups are taken with CreateCheckpoint on a vault; `--wait` polls ListBackups by checkpoint
until every backup is `available` or `error`, and feeds the progress bar from the backup
operation logs (`extra_info.common.progress`). Restore, disks and servers from backups are jobs:
`--wait` polls the restore's operation log, or EVS ShowJob for the disk and server jobs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from opencbr.core.sizes import human_bytes

from .client import ApiError, Client
from .common import JsonOpt, client, edge_errors
from .output import (
    console,
    err_console,
    print_json,
    print_new_id,
    print_page_note,
    print_record,
    print_rows,
)
from .progress import ProgressLike, progress

__all__ = ["backup_app", "job_app", "oplog_app", "restore"]

MiB = 1 << 20
GiB = 1 << 30

backup_app = typer.Typer(
    help="Backups: take, list, rename, delete; disks and servers from them.",
    no_args_is_help=True,
)
oplog_app = typer.Typer(
    help="Operation logs: what backups, restores and shares did.", no_args_is_help=True
)
job_app = typer.Typer(help="Asynchronous jobs (EVS ShowJob).", no_args_is_help=True)

BackupArg = Annotated[str, typer.Argument(help="Backup id (UUID).")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until it is done.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds --wait waits at most.")]
BACKUP_COLUMNS = ["id", "name", "status", "resource", "type", "size", "stored", "incremental"]
OPLOG_COLUMNS = ["id", "type", "status", "progress", "resource", "vault", "started_at", "error"]
FINAL_BACKUP = ("available", "error")
LimitOpt = Annotated[int, typer.Option("--limit", min=1, max=1000, help="Rows per page.")]
OffsetOpt = Annotated[int, typer.Option("--offset", min=0, help="Rows to skip (paging).")]


# ---------------------------------------------------------------------------- presentation


def _backup_row(backup: dict[str, Any]) -> dict[str, Any]:
    kind = "server" if backup["resource_type"] == "OS::Nova::Server" else "disk"
    return {
        "id": backup["id"],
        "name": backup["name"],
        "status": backup["status"],
        "resource": backup["resource_name"] or backup["resource_id"],
        "resource_id": backup["resource_id"],
        "type": kind,
        "size": human_bytes(float(backup.get("size") or 0) * MiB, trim=True),
        "stored": human_bytes(float(backup.get("stored_size") or 0) * MiB, trim=True),
        "resource_size": human_bytes(int(backup.get("resource_size") or 0) * GiB, trim=True),
        "incremental": backup.get("incremental"),
        "encrypted": backup["extend_info"]["encrypted"],
        "vault_id": backup["vault_id"],
        "checkpoint_id": backup["checkpoint_id"],
        "project_id": backup["project_id"],
        "member_status": backup.get("member_status"),
        "created_at": backup["created_at"],
        "protected_at": backup.get("protected_at"),
        "disks": len(backup.get("children") or []) or None,
        **_external_read(backup),
    }


def _external_read(backup: dict[str, Any]) -> dict[str, Any]:
    """How a backup of an external disk read its source (ShowBackup only)."""
    read = backup["extend_info"].get("external_source")
    if not read:
        return {}
    return {
        "source_bitmap": read["bitmap"] or None,
        "source_read": read["read"],
        "full_read_reason": read["full_read_reason"] or None,
        "bitmap_marked": human_bytes(read["marked_bytes"], trim=True),
    }


def _oplog_row(log: dict[str, Any]) -> dict[str, Any]:
    extra = log.get("extra_info") or {}
    error = log.get("error_info") or {}
    return {
        "id": log["id"],
        "type": log["operation_type"],
        "status": log["status"],
        "progress": f"{(extra.get('common') or {}).get('progress', 0)}%",
        "resource": (extra.get("resource") or {}).get("name") or "",
        "resource_id": (extra.get("resource") or {}).get("id") or "",
        "vault": log.get("vault_name") or "",
        "vault_id": log.get("vault_id") or "",
        "checkpoint_id": log.get("checkpoint_id") or "",
        "job_id": (extra.get("common") or {}).get("task_id") or "",
        "started_at": log.get("started_at"),
        "ended_at": log.get("ended_at"),
        "error": error.get("code") or "",
        "error_message": error.get("message") or "",
    }


def _bar() -> ProgressLike:
    return progress("steps")


def _poll(
    what: str,
    probe: Callable[[], tuple[bool, float | None, Any]],
    timeout: float,
) -> Any:
    """Call `probe` until it says done, showing its percent (None: not known yet) on a bar."""
    deadline = time.monotonic() + timeout
    delay = 0.01  # a backup of a disk holding little is done in milliseconds
    with _bar() as bar:
        task = bar.add_task(what, total=100)
        while True:
            done, percent, value = probe()
            if percent is not None:
                bar.update(task, completed=percent)
            if done:
                bar.update(task, completed=100)
                return value
            if time.monotonic() > deadline:
                raise ApiError(0, "CLI.0003", f"{what}: still running after {timeout:.0f} s", "")
            time.sleep(delay)
            delay = min(1.0, delay * 1.5)


# ---------------------------------------------------------------------------- waiting


def _cbr(api: Client, suffix: str) -> str:
    return f"/v3/{api.project()}{suffix}"


def wait_checkpoint(api: Client, checkpoint: dict[str, Any], timeout: float) -> list[Any]:
    """The checkpoint's backups once each is `available` or `error`."""
    expected = max(1, len(checkpoint["vault"]["resources"]))
    params = {"operation_type": "backup", "vault_id": checkpoint["vault"]["id"]}

    def probe() -> tuple[bool, float | None, Any]:
        found = api.request(
            "GET", _cbr(api, "/backups"), params={"checkpoint_id": checkpoint["id"]}
        )
        backups = found["backups"]
        done = len(backups) >= expected and all(b["status"] in FINAL_BACKUP for b in backups)
        logs = api.request("GET", _cbr(api, "/operation-logs"), params=params)["operation_logs"]
        mine = [log for log in logs if log["checkpoint_id"] == checkpoint["id"]]
        percents = [float(log["extra_info"]["common"].get("progress") or 0) for log in mine]
        percent = sum(percents) / expected if percents else None
        return done, percent, backups

    backups: list[Any] = _poll("backup", probe, timeout)
    return backups


def wait_oplog(api: Client, oplog_id: str, what: str, timeout: float) -> dict[str, Any]:
    """Poll an operation log until it is no longer running; a failure is raised."""

    def probe() -> tuple[bool, float | None, Any]:
        log = api.request("GET", _cbr(api, f"/operation-logs/{oplog_id}"))["operation_log"]
        progress = float(log["extra_info"]["common"].get("progress") or 0)
        return log["status"] not in ("running", "waiting"), progress, log

    log: dict[str, Any] = _poll(what, probe, timeout)
    if log["status"] != "success":
        error = log.get("error_info") or {}
        raise ApiError(400, error.get("code") or "CBR.FAILED", error.get("message") or what, "")
    return log


def wait_job(api: Client, job_id: str, what: str, timeout: float) -> dict[str, Any]:
    """Poll EVS ShowJob until SUCCESS (returned) or FAIL (raised)."""

    def probe() -> tuple[bool, float | None, Any]:
        job = api.request("GET", f"/v1/{api.project()}/jobs/{job_id}")
        progress = job.get("progress")
        percent = float(progress) if progress is not None else None
        return job["status"] in ("SUCCESS", "FAIL"), percent, job

    job: dict[str, Any] = _poll(what, probe, timeout)
    if job["status"] == "FAIL":
        raise ApiError(
            400, job.get("error_code") or "EVS.JOB", job.get("fail_reason") or "failed", ""
        )
    return job


# ---------------------------------------------------------------------------- backups


@backup_app.command("create")
@edge_errors
def create(
    vault_id: Annotated[str, typer.Argument(help="Vault whose resources to back up.")],
    name: Annotated[str | None, typer.Option("--name", help="Backup name.")] = None,
    resource: Annotated[
        list[str] | None,
        typer.Option("--resource", "-r", help="Only this protected resource; repeat."),
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    full: Annotated[bool, typer.Option("--full", help="A full, not incremental, backup.")] = False,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 3600.0,
    as_json: JsonOpt = False,
) -> None:
    """Back up a vault's resources now (one backup per resource)."""
    parameters: dict[str, Any] = {"incremental": not full}
    for key, value in (("name", name), ("description", description), ("resources", resource)):
        if value:
            parameters[key] = value
    api = client()
    body = {"checkpoint": {"vault_id": vault_id, "parameters": parameters}}
    checkpoint = api.create(_cbr(api, "/checkpoints"), body)["checkpoint"]
    if not wait:
        if as_json:
            print_json(checkpoint)
            return
        resources = ", ".join(r["name"] or r["id"] for r in checkpoint["vault"]["resources"])
        record = {"checkpoint_id": checkpoint["id"], "status": checkpoint["status"]}
        print_record({**record, "vault_id": vault_id, "resources": resources}, False)
        print_new_id("checkpoint", checkpoint["id"])
        return
    backups = wait_checkpoint(api, checkpoint, timeout)
    if as_json:
        print_json(backups)
    else:
        print_rows([_backup_row(b) for b in backups], BACKUP_COLUMNS, False, title="Backups")
        for backup in backups:
            print_new_id("backup", backup["id"])
    failed = [b for b in backups if b["status"] == "error"]
    if failed:
        err_console.print(f"[red]error[/red] {len(failed)} backup(s) failed")
        raise typer.Exit(1)


@backup_app.command("list")
@edge_errors
def list_backups(
    vault: Annotated[str | None, typer.Option("--vault", help="Only this vault's.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="available, protecting, error, ...")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Only backups named so.")] = None,
    resource: Annotated[
        str | None, typer.Option("--resource", help="Only backups of this disk or server.")
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", help="Only this checkpoint's.")
    ] = None,
    own_type: Annotated[
        str | None, typer.Option("--own-type", help="private (default), shared or all_granted.")
    ] = None,
    member_status: Annotated[
        str | None,
        typer.Option("--member-status", help="Shared backups: pending, accepted or rejected."),
    ] = None,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """List backups, newest first, a page at a time."""
    api = client()
    params = {
        "vault_id": vault,
        "status": status,
        "name": name,
        "resource_id": resource,
        "checkpoint_id": checkpoint,
        "own_type": own_type,
        "member_status": member_status,
        "limit": limit,
        "offset": offset,
    }
    page = api.request("GET", _cbr(api, "/backups"), params=params)
    found = page["backups"]
    if as_json:
        print_json(found)
        return
    columns = BACKUP_COLUMNS + (["member_status"] if own_type in ("shared", "all_granted") else [])
    print_rows([_backup_row(b) for b in found], [*columns, "created_at"], False, title="Backups")
    print_page_note(len(found), offset, int(page["count"]))


def _show_backup(backup: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(backup)
        return
    print_record(_backup_row(backup), False)
    children = backup.get("children") or []
    if children:
        rows = [_backup_row(c) for c in children]
        print_rows(rows, ["id", "name", "status", "resource", "size"], False, title="Disks")


@backup_app.command("show")
@edge_errors
def show(backup_id: BackupArg, as_json: JsonOpt = False) -> None:
    """Show one backup (a server backup lists its disk backups)."""
    api = client()
    _show_backup(api.request("GET", _cbr(api, f"/backups/{backup_id}"))["backup"], as_json)


@backup_app.command("rename")
@edge_errors
def rename(backup_id: BackupArg, name: str, as_json: JsonOpt = False) -> None:
    """Give a backup a new name."""
    api = client()
    body = {"backup": {"name": name}}
    _show_backup(api.request("PUT", _cbr(api, f"/backups/{backup_id}"), body)["backup"], as_json)


@backup_app.command("delete")
@edge_errors
def delete(backup_id: BackupArg, as_json: JsonOpt = False) -> None:
    """Delete a backup (it also leaves every project it was shared with)."""
    api = client()
    api.request("DELETE", _cbr(api, f"/backups/{backup_id}"))
    if as_json:
        print_json({"id": backup_id, "deleted": True})
    else:
        console.print(f"deleted backup {backup_id}")


@backup_app.command("to-disk")
@edge_errors
def to_disk(
    backup_id: BackupArg,
    name: Annotated[str, typer.Option("--name", help="The new disk's name.")],
    size_gb: Annotated[
        int | None, typer.Option("--size-gb", help="Size in GB (default: the backup's disk's).")
    ] = None,
    az: Annotated[str, typer.Option("--az", help="Availability zone.")] = "az1",
    volume_type: Annotated[str, typer.Option("--volume-type")] = "SAS",
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 3600.0,
    as_json: JsonOpt = False,
) -> None:
    """Create a new disk holding a disk backup's data (EVS CreateVolume with backup_id)."""
    api = client()
    volume: dict[str, Any] = {
        "name": name,
        "backup_id": backup_id,
        "availability_zone": az,
        "volume_type": volume_type,
    }
    if size_gb is not None:
        volume["size"] = size_gb
    answer = api.create(f"/v2.1/{api.project()}/cloudvolumes", {"volume": volume})
    result = {"volume_id": answer["volume_ids"][0], "job_id": answer["job_id"], "done": wait}
    if wait:
        wait_job(api, answer["job_id"], "disk from backup", timeout)
    _report(result, as_json, f"disk {result['volume_id']} from backup {backup_id}", wait)
    if not as_json:
        print_new_id("disk", result["volume_id"])


@backup_app.command("to-server")
@edge_errors
def to_server(
    backup_id: BackupArg,
    name: Annotated[str, typer.Option("--name", help="The new server's name.")],
    az: Annotated[str | None, typer.Option("--az", help="Availability zone.")] = None,
    kms_key: Annotated[
        str | None, typer.Option("--kms-key", help="Key for the new disks of an encrypted one.")
    ] = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 3600.0,
    as_json: JsonOpt = False,
) -> None:
    """Create a new server (one new disk per disk backed up) from a server backup."""
    api = client()
    server: dict[str, Any] = {"name": name}
    if az is not None:
        server["availability_zone"] = az
    if kms_key is not None:
        server["kms_key_id"] = kms_key
    path = _cbr(api, f"/backups/{backup_id}/servers")
    answer = api.create(path, {"server": server})
    result = {**answer, "done": wait}
    if wait:
        wait_job(api, answer["job_id"], "server from backup", timeout)
    _report(result, as_json, f"server {answer['server_id']} from backup {backup_id}", wait)
    if not as_json:
        print_new_id("server", answer["server_id"])


def _report(result: dict[str, Any], as_json: bool, message: str, done: bool) -> None:
    if as_json:
        print_json(result)
        return
    console.print(f"{message}: {'done' if done else 'started, job ' + str(result['job_id'])}")


def _restore_log(api: Client, backup: dict[str, Any]) -> dict[str, Any]:
    """The running restore's operation log (a backup is restored by one job at a time)."""
    params = {"operation_type": "restore", "resource_id": backup["resource_id"], "limit": 20}
    logs = api.request("GET", _cbr(api, "/operation-logs"), params=params)["operation_logs"]
    for log in logs:  # newest first
        if (log["extra_info"].get("restore") or {}).get("backup_id") == backup["id"]:
            found: dict[str, Any] = log
            return found
    raise ApiError(0, "CLI.0004", f"no restore log of backup {backup['id']}", "")


@edge_errors
def restore(
    backup_id: BackupArg,
    volume: Annotated[
        str | None,
        typer.Option("--volume", help="Disk to overwrite (default: the backed-up disk)."),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option("--server", help="Stopped server to restore a server backup onto."),
    ] = None,
    nbd: Annotated[
        str | None,
        typer.Option("--nbd", help="Restore a disk backup onto this NBD export (a VM's disk)."),
    ] = None,
    tls_psk: Annotated[
        str, typer.Option("--tls-psk", help="TLS PSK file for --nbd (on the server).")
    ] = "",
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 3600.0,
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup onto its disk or server (or another one of at least its size), or a
    disk backup onto an NBD export."""
    api = client()
    backup = api.request("GET", _cbr(api, f"/backups/{backup_id}"))["backup"]
    body: dict[str, Any] = {}
    if volume is not None:
        body["volume_id"] = volume
    if server is not None:
        body["server_id"] = server
    if nbd is not None:
        body["nbd_uri"], body["tls_psk_file"] = nbd, tls_psk
    api.create(_cbr(api, f"/backups/{backup_id}/restore"), {"restore": body})
    log = _restore_log(api, backup)
    if wait:
        log = wait_oplog(api, log["id"], "restore", timeout)
    row = _oplog_row(log)
    result = {"backup_id": backup_id, "operation_log_id": log["id"], "job_id": row["job_id"]}
    result["targets"] = (log["extra_info"].get("restore") or {}).get("target_resource_ids")
    result["status"] = log["status"]
    if as_json:
        print_json(result)
        return
    targets = ", ".join(result["targets"] or []) or str(nbd)
    console.print(f"restore of {backup_id} onto {targets}: {log['status']}")


# ---------------------------------------------------------------------------- logs and jobs


@oplog_app.command("list")
@edge_errors
def oplog_list(
    operation_type: Annotated[
        str | None, typer.Option("--type", help="backup, restore, delete, share, ...")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="running, success, failed, ...")
    ] = None,
    vault: Annotated[str | None, typer.Option("--vault", help="Only this vault's.")] = None,
    resource: Annotated[str | None, typer.Option("--resource", help="Resource id.")] = None,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """List operation logs, newest first, a page at a time."""
    api = client()
    params = {
        "operation_type": operation_type,
        "status": status,
        "vault_id": vault,
        "resource_id": resource,
        "limit": limit,
        "offset": offset,
    }
    page = api.request("GET", _cbr(api, "/operation-logs"), params=params)
    found = page["operation_logs"]
    if as_json:
        print_json(found)
        return
    print_rows([_oplog_row(log) for log in found], OPLOG_COLUMNS, False, title="Operation logs")
    print_page_note(len(found), offset, int(page["count"]))


@oplog_app.command("show")
@edge_errors
def oplog_show(operation_log_id: str, as_json: JsonOpt = False) -> None:
    """Show one operation log."""
    api = client()
    log = api.request("GET", _cbr(api, f"/operation-logs/{operation_log_id}"))["operation_log"]
    if as_json:
        print_json(log)
    else:
        print_record(_oplog_row(log), False)


@job_app.command("show")
@edge_errors
def job_show(
    job_id: str, wait: WaitOpt = False, timeout: TimeoutOpt = 3600.0, as_json: JsonOpt = False
) -> None:
    """Show a job's status (EVS ShowJob); --wait until it succeeds or fails."""
    api = client()
    if wait:
        job = wait_job(api, job_id, "job", timeout)
    else:
        job = api.request("GET", f"/v1/{api.project()}/jobs/{job_id}")
    if as_json:
        print_json(job)
        return
    entities = job.get("entities") or {}
    record = {key: job.get(key) for key in ("job_id", "job_type", "status", "progress")}
    record.update(
        volume_id=entities.get("volume_id"),
        begin_time=job.get("begin_time"),
        end_time=job.get("end_time"),
        error_code=job.get("error_code"),
        fail_reason=job.get("fail_reason"),
    )
    print_record(record, False)
