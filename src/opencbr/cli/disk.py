"""`opencbr disk ...`: create, list, show, delete, and move bytes (import, export, write, read).

Transfers use the data-path extension of the EVS API (`.../cloudvolumes/{id}/data`) with
unsigned, streamed bodies; import and export are sparse and parallel (`transfer.py`: holes and
all-zero blocks are not sent, the exported file keeps holes) and show a progress bar on
stderr.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from . import transfer
from .client import ApiError, Client
from .common import JsonOpt, client, edge_errors
from .output import err_console, print_json, print_new_id, print_record, print_rows
from .progress import ProgressLike, progress

__all__ = ["disk_app", "wait_job"]

GiB = 1 << 30
PIECE = 1 << 20

disk_app = typer.Typer(
    help="Disks (EVS volumes): create, list, transfer data.", no_args_is_help=True
)

NameOpt = Annotated[str, typer.Option("--name", help="Disk name.")]
AzOpt = Annotated[str, typer.Option("--az", help="Availability zone.")]
TypeOpt = Annotated[str, typer.Option("--volume-type", help="SATA, SAS, SSD, GPSSD, ESSD ...")]
EncryptedOpt = Annotated[
    bool, typer.Option("--encrypted", help="Encrypt (with the project's evs/default key).")
]
KmsKeyOpt = Annotated[
    str | None, typer.Option("--kms-key", help="KMS key id (implies --encrypted).")
]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the job is done.")]


def _volumes(api: Client, suffix: str = "") -> str:
    return f"/v2/{api.project()}/cloudvolumes{suffix}"


def _progress() -> ProgressLike:
    return progress("bytes")


def wait_job(api: Client, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
    """Poll EVS ShowJob until SUCCESS (returned) or FAIL (raised as an error)."""
    deadline = time.monotonic() + timeout
    delay = 0.005  # a short job (a disk of a backup holding little) ends in milliseconds
    while True:
        job: dict[str, Any] = api.request("GET", f"/v1/{api.project()}/jobs/{job_id}")
        if job["status"] == "SUCCESS":
            return job
        if job["status"] == "FAIL":
            raise ApiError(
                400, job.get("error_code") or "EVS.JOB", job.get("fail_reason") or "failed", ""
            )
        if time.monotonic() > deadline:
            raise ApiError(0, "CLI.0003", f"job {job_id} still {job['status']}", "")
        time.sleep(delay)
        delay = min(1.0, delay * 1.5)


def _create(
    api: Client,
    name: str,
    size_gb: int,
    az: str,
    volume_type: str,
    encrypted: bool,
    kms_key: str | None,
    wait: bool,
) -> dict[str, Any]:
    volume: dict[str, Any] = {
        "name": name,
        "size": size_gb,
        "availability_zone": az,
        "volume_type": volume_type,
    }
    if encrypted or kms_key:
        volume["metadata"] = {"__system__encrypted": "1"}
        if kms_key:
            volume["metadata"]["__system__cmkid"] = kms_key
    answer = api.create(f"/v2.1/{api.project()}/cloudvolumes", {"volume": volume})
    disk_id, job_id = answer["volume_ids"][0], answer["job_id"]
    if wait:
        wait_job(api, job_id)
    return {"id": disk_id, "job_id": job_id}


def _done(result: Any, as_json: bool, message: str) -> None:
    if as_json:
        print_json(result)
    else:
        err_console.print(message)


def _row(volume: dict[str, Any]) -> dict[str, Any]:
    attached = [a["server_id"] for a in volume.get("attachments", [])]
    return {
        "id": volume["id"],
        "name": volume["name"],
        "status": volume["status"],
        "size_gb": volume["size"],
        "volume_type": volume["volume_type"],
        "availability_zone": volume["availability_zone"],
        "encrypted": volume["encrypted"],
        "kms_key_id": volume["metadata"].get("__system__cmkid"),
        "server_id": attached[0] if attached else None,
        "created_at": volume["created_at"],
    }


@disk_app.command("create")
@edge_errors
def create(
    name: NameOpt,
    size_gb: Annotated[int, typer.Option("--size-gb", help="Size in GB.")],
    az: AzOpt = "az1",
    volume_type: TypeOpt = "SAS",
    encrypted: EncryptedOpt = False,
    kms_key: KmsKeyOpt = None,
    wait: WaitOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Create an empty disk."""
    api = client()
    made = _create(api, name, size_gb, az, volume_type, encrypted, kms_key, wait)
    print_record(_row(api.request("GET", _volumes(api, f"/{made['id']}"))["volume"]), as_json)
    if not as_json:
        print_new_id("disk", made["id"])


@disk_app.command("list")
@edge_errors
def list_disks(as_json: JsonOpt = False) -> None:
    """List the project's disks."""
    api = client()
    volumes = api.request("GET", _volumes(api, "/detail"))["volumes"]
    rows = [_row(v) for v in volumes]
    print_rows(rows, ["id", "name", "status", "size_gb", "encrypted", "server_id"], as_json)


@disk_app.command("show")
@edge_errors
def show(disk_id: str, as_json: JsonOpt = False) -> None:
    """Show one disk."""
    api = client()
    print_record(_row(api.request("GET", _volumes(api, f"/{disk_id}"))["volume"]), as_json)


@disk_app.command("delete")
@edge_errors
def delete(disk_id: str, wait: WaitOpt = True, as_json: JsonOpt = False) -> None:
    """Delete a disk (it must not be attached)."""
    api = client()
    job_id = api.request("DELETE", _volumes(api, f"/{disk_id}"))["job_id"]
    if wait:
        wait_job(api, job_id)
    result = {"id": disk_id, "job_id": job_id, "deleted": wait}
    _done(result, as_json, f"disk {disk_id} deleted")


# ---------------------------------------------------------------------------- transfers


@disk_app.command("import")
@edge_errors
def import_file(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    name: NameOpt,
    size_gb: Annotated[
        int | None, typer.Option("--size-gb", help="Size in GB (default: the file's, rounded up).")
    ] = None,
    az: AzOpt = "az1",
    volume_type: TypeOpt = "SAS",
    encrypted: EncryptedOpt = False,
    kms_key: KmsKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a disk holding a raw image file."""
    size = file.stat().st_size
    api = client()
    made = _create(
        api, name, size_gb or max(1, -(-size // GiB)), az, volume_type, encrypted, kms_key, True
    )
    path = _volumes(api, f"/{made['id']}/data")
    fd = os.open(file, os.O_RDONLY)
    try:
        with _progress() as bar:
            task = bar.add_task("import", total=size)
            transfer.upload(api, path, fd, size, lambda sent: bar.advance(task, sent))
            bar.update(task, completed=size)
    finally:
        os.close(fd)
    result = {"id": made["id"], "job_id": made["job_id"], "bytes": size}
    _done(result, as_json, f"imported {size} bytes into {made['id']}")
    if not as_json:
        print_new_id("disk", made["id"])


@disk_app.command("export")
@edge_errors
def export_file(
    disk_id: str,
    file: Annotated[Path, typer.Argument(dir_okay=False, writable=True)],
    length: Annotated[
        int | None,
        typer.Option(
            "--length",
            min=1,
            help="Only the first LENGTH bytes (e.g. the imported image's size); "
            "default: the whole disk, which is a whole number of GB.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a disk's contents to a (sparse) raw image file."""
    api = client()
    answer = api.request("GET", _volumes(api, f"/{disk_id}/extents"))
    size = min(int(answer["size_bytes"]), length or int(answer["size_bytes"]))
    extents = _clipped(answer["extents"], size)
    total = sum(piece for _, piece in extents)
    path = _volumes(api, f"/{disk_id}/data")
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
        with _progress() as bar:
            task = bar.add_task("export", total=total)
            transfer.download(api, path, fd, extents, lambda got: bar.advance(task, got))
        os.fsync(fd)
    finally:
        os.close(fd)
    result = {"id": disk_id, "file": str(file), "size_bytes": size}
    _done(result, as_json, f"exported {disk_id} to {file}")


def _clipped(extents: list[dict[str, Any]], size: int) -> list[tuple[int, int]]:
    """The (offset, length) of each data extent, cut at `size`."""
    clipped = []
    for extent in extents:
        offset, length = int(extent["offset"]), int(extent["length"])
        if offset < size:
            clipped.append((offset, min(length, size - offset)))
    return clipped


def _file_chunks(file: Path, bar: ProgressLike, task: Any) -> Iterator[bytes]:
    with open(file, "rb") as handle:
        while chunk := handle.read(PIECE):
            bar.advance(task, len(chunk))
            yield chunk


@disk_app.command("write")
@edge_errors
def write(
    disk_id: str,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    offset: Annotated[int, typer.Option("--offset", help="Byte offset (multiple of 512).")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Write a file's bytes into a disk at an offset (one streamed request)."""
    api = client()
    size = file.stat().st_size
    with _progress() as bar:
        task = bar.add_task("write", total=size)
        answer = api.upload(
            _volumes(api, f"/{disk_id}/data"),
            _file_chunks(file, bar, task),
            size,
            {"offset": offset, "sync": True},
        )
    _done(answer, as_json, f"wrote {size} bytes at {offset}")


@disk_app.command("read")
@edge_errors
def read(
    disk_id: str,
    file: Annotated[Path, typer.Argument(dir_okay=False, writable=True)],
    length: Annotated[int, typer.Option("--length", help="Bytes to read.")],
    offset: Annotated[int, typer.Option("--offset", help="Byte offset.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Read a byte range of a disk into a file."""
    api = client()
    params = {"offset": offset, "length": length}
    with _progress() as bar, open(file, "wb") as handle:
        task = bar.add_task("read", total=length)
        for chunk in api.download(_volumes(api, f"/{disk_id}/data"), params):
            handle.write(chunk)
            bar.advance(task, len(chunk))
    result = {"id": disk_id, "offset": offset, "length": length, "file": str(file)}
    _done(result, as_json, f"read {length} bytes into {file}")
