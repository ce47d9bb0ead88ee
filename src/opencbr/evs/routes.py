"""EVS routes: the vendor's CreateVolume/ShowVolume/ListVolumes/DeleteVolume/ShowJob paths,
our data-path extension under a disk, and (from `server_routes`) our server calls.

Data path (streamed; the API's JSON body limit does not apply to paths ending in `/data`):

* `PUT /v2/{project_id}/cloudvolumes/{volume_id}/data?offset=N[&sync=true]` — the body
  (`application/octet-stream`, `Content-Length` required) is written at byte `offset`; offset
  and length must be multiples of 512 and inside the disk. The body is handed to the driver in
  pieces of `PIECE` bytes as it arrives, never buffered whole. `sync=true` flushes the disk
  before answering. A range error is answered before anything is written.
* `GET /v2/{project_id}/cloudvolumes/{volume_id}/data?offset=N&length=M` — the plaintext,
  streamed (`length` defaults to the rest of the disk).
* `GET /v2/{project_id}/cloudvolumes/{volume_id}/extents[?changed=true]` — the ranges that may
  hold data (or that changed since the last backup), for sparse copies.

The data routes take no request-long database session: the disk is looked up and its key
unwrapped in a short unit of work, then the bytes move without holding a transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from opencbr.core.context import Actor, Runtime
from opencbr.core.idempotency import idempotent
from opencbr.core.jobs import Job
from opencbr.core.jobs import JobNotFound as CoreJobNotFound
from opencbr.core.jobs import get_job as core_get_job
from opencbr.core.numbers import whole_number
from opencbr.core.routing import JSONRoute
from opencbr.core.web import RuntimeDep, SessionDep, get_runtime
from opencbr.iam.auth import ActorDep, StreamedBodyDep, project_actor

from . import service
from .body_buffers import BufferPool
from .errors import (
    CLIENT_TOKEN_ERRORS,
    DiskRangeInvalid,
    EvsValidationFailed,
    JobNotFound,
    LengthRequired,
    WriteIncomplete,
)
from .external_routes import router as external_router
from .models import Disk
from .nbd_routes import router as nbd_router
from .recycle import delete_or_recycle
from .recycle_routes import router as recycle_router
from .resize_routes import router as resize_router
from .responses import (
    CreateVolumeAnswer,
    DataWritten,
    Extents,
    JobAnswer,
    JobOut,
    VolumeList,
    VolumeOne,
)
from .schemas import CreateVolumeBody, VolumeIn
from .server_routes import router as server_router
from .service import DiskFilter, DiskSpec, DiskVolume, volume_from_backup
from .snapshot_routes import router as snapshot_router
from .transfer_routes import router as transfer_router
from .views import job_view, job_volume_id, volume_view
from .volume_admin_routes import router as volume_admin_router

__all__ = ["PIECE", "VALIDATION_ERRORS", "router", "routers"]

VALIDATION_ERRORS: dict[str, type] = {
    "/cloudvolumes": EvsValidationFailed,
    "/cloudsnapshots": EvsValidationFailed,
    "/recycle-bin-volumes": EvsValidationFailed,
    "/os-volume-transfer": EvsValidationFailed,
    "/servers": EvsValidationFailed,
}
PIECE = 8 << 20
"""Bytes of a request body gathered before each write to the driver (one durable change-map
mark each: the CLI sends 8 MiB requests)."""
ALIGNMENT = 512
_BUFFERS = BufferPool(PIECE)

router = APIRouter(tags=["evs"], route_class=JSONRoute)
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]


def _spec(volume: VolumeIn) -> DiskSpec:
    return DiskSpec(
        name=volume.name,
        size_gb=volume.size,
        availability_zone=volume.availability_zone,
        volume_type=volume.volume_type,
        description=volume.description,
        metadata=dict(volume.metadata),
        tags=dict(volume.tags),
        backup_id=volume.backup_id,
        multiattach=volume.multiattach,
    )


def _refuse_unsupported(body: CreateVolumeBody) -> None:
    volume = body.volume
    if volume.snapshot_id or volume.image_ref:
        raise EvsValidationFailed(reason="disks from snapshots or images are not supported")
    if body.server_id:
        raise EvsValidationFailed(reason="server_id is not supported: attach the disk instead")
    charging = (body.bss_param or {}).get("chargingMode", "postPaid")
    if charging != "postPaid":
        raise EvsValidationFailed(reason="bssParam.chargingMode must be postPaid")
    if volume.backup_id and volume.count != 1:
        raise EvsValidationFailed(reason="volume.count must be 1 with a backup_id")


def _from_backup(
    session: Any, runtime: Runtime, actor: Actor, spec: DiskSpec
) -> tuple[list[Disk], Job]:
    disk, job = volume_from_backup(runtime)(session, runtime, actor, spec)
    return [disk], job


@router.post(
    "/v2.1/{project_id}/cloudvolumes",
    status_code=202,
    operation_id="CreateVolume",
    response_model=CreateVolumeAnswer,
)
@router.post(
    "/v2/{project_id}/cloudvolumes",
    status_code=202,
    operation_id="CreateVolumeV2",
    response_model=CreateVolumeAnswer,
)
@idempotent(CLIENT_TOKEN_ERRORS)
def create_volume(
    body: CreateVolumeBody, actor: ActorDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    _refuse_unsupported(body)
    spec = _spec(body.volume)
    if spec.backup_id:
        disks, job = _from_backup(session, runtime, actor, spec)
    else:
        disks, job = service.create_disks(session, runtime, actor, spec, body.volume.count)
    return {"job_id": job.id, "volume_ids": [d.id for d in disks]}


def _list(
    session: SessionDep,
    actor: Actor,
    limit: int,
    offset: int,
    where: DiskFilter,
    base_url: str,
) -> dict[str, Any]:
    assert actor.project_id is not None
    disks = service.list_disks(session, actor.project_id, where, offset, limit)
    return {
        "count": service.count_disks(session, actor.project_id, where),
        "volumes": [volume_view(d, base_url) for d in disks],
        "volumes_links": [],
    }


@router.get(
    "/v2/{project_id}/cloudvolumes/detail", operation_id="ListVolumes", response_model=VolumeList
)
@router.get(
    "/v2/{project_id}/cloudvolumes", operation_id="ListVolumesBrief", response_model=VolumeList
)
def list_volumes(
    actor: ActorDep,
    session: SessionDep,
    request: Request,
    limit: Limit = 1000,
    offset: Offset = 0,
    name: str | None = None,
    status: str | None = None,
    availability_zone: str | None = None,
    server_id: str | None = None,
    ids: Annotated[list[str] | None, Query(alias="id")] = None,
) -> dict[str, Any]:
    where = DiskFilter(name, status, availability_zone, server_id, tuple(ids or ()))
    return _list(session, actor, limit, offset, where, str(request.base_url).rstrip("/"))


@router.get(
    "/v2/{project_id}/cloudvolumes/{volume_id}", operation_id="ShowVolume", response_model=VolumeOne
)
def show_volume(
    volume_id: str, actor: ActorDep, session: SessionDep, request: Request
) -> dict[str, Any]:
    assert actor.project_id is not None
    disk = service.get_disk(session, actor.project_id, volume_id)
    return {"volume": volume_view(disk, str(request.base_url).rstrip("/"))}


@router.delete(
    "/v2/{project_id}/cloudvolumes/{volume_id}",
    status_code=202,
    operation_id="DeleteVolume",
    response_model=JobAnswer,
)
def delete_volume(volume_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    job = delete_or_recycle(session, actor, volume_id)
    return {"job_id": job.id}


@router.get("/v1/{project_id}/jobs/{job_id}", operation_id="ShowJob", response_model=JobOut)
def show_job(job_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    assert actor.project_id is not None
    try:
        job = core_get_job(session, job_id, actor.project_id)
    except CoreJobNotFound as exc:
        raise JobNotFound(id=job_id) from exc
    volume_id = job_volume_id(job)
    disk = session.get(Disk, volume_id) if volume_id is not None else None
    if disk is not None and disk.project_id != actor.project_id:
        disk = None  # given to another project since
    return job_view(job, disk)


# ---------------------------------------------------------------------------- data path


def data_actor(project_id: str, request: Request, body: StreamedBodyDep) -> Actor:
    """The caller in the path's project, resolved in its own short unit of work: a stream of
    disk data holds no database connection. Its body alone may go unsigned."""
    with get_runtime(request).database.unit_of_work() as session:
        return project_actor(project_id, request, session, body)


DataActorDep = Annotated[Actor, Depends(data_actor)]


def _open(runtime: Runtime, actor: Actor, volume_id: str) -> DiskVolume:
    with runtime.database.unit_of_work() as session:
        return service.data_volume(runtime, session, actor, volume_id)


def _check_write(volume: DiskVolume, offset: int, length: int) -> None:
    reason = None
    if offset < 0:
        reason = f"offset {offset} must not be negative"
    elif offset % ALIGNMENT or length % ALIGNMENT:
        reason = f"offset {offset} and length {length} must be multiples of {ALIGNMENT}"
    elif offset + length > volume.size:
        reason = f"write of {length} bytes at {offset} passes the disk size {volume.size}"
    if reason is not None:
        raise DiskRangeInvalid(id=volume.disk_id, reason=reason)


async def _stream_into(volume: DiskVolume, request: Request, offset: int, length: int) -> int:
    """Write the body as it arrives, `PIECE` bytes at a time, gathered in a buffer lent by
    `_BUFFERS` (each body chunk is copied once, into it); returns the bytes written. The
    length is a multiple of `ALIGNMENT`, and so is every piece. A write in a thread is
    awaited to its end even when the request is cancelled, so the buffer is never lent on
    while a write still reads it."""
    with _BUFFERS.lend() as whole:
        buffer = whole[: min(PIECE, length)]
        filled, position, received = 0, offset, 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > length:
                raise WriteIncomplete(id=volume.disk_id, reason="body longer than Content-Length")
            data, at = memoryview(chunk), 0
            while at < len(data):
                take = min(len(data) - at, len(buffer) - filled)
                buffer[filled : filled + take] = data[at : at + take]
                filled, at = filled + take, at + take
                if filled == len(buffer):
                    await run_in_threadpool(volume.write, position, buffer)
                    position, filled = position + filled, 0
        if received != length:
            raise WriteIncomplete(
                id=volume.disk_id, reason=f"body ended after {received} of {length} bytes"
            )
        if filled:
            await run_in_threadpool(volume.write, position, buffer[:filled])
    return received


@router.put(
    "/v2/{project_id}/cloudvolumes/{volume_id}/data",
    operation_id="WriteVolumeData",
    response_model=DataWritten,
)
async def write_data(
    volume_id: str,
    request: Request,
    actor: DataActorDep,
    offset: int = 0,
    sync: bool = False,
) -> dict[str, Any]:
    length = whole_number(request.headers.get("content-length", ""))
    if length is None:
        raise LengthRequired()
    runtime = get_runtime(request)
    volume = await run_in_threadpool(_open, runtime, actor, volume_id)
    _check_write(volume, offset, length)
    written = await _stream_into(volume, request, offset, length)
    if sync:
        await run_in_threadpool(volume.flush)
    return {"volume_id": volume_id, "offset": offset, "length": written}


BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.get(
    "/v2/{project_id}/cloudvolumes/{volume_id}/data",
    operation_id="ReadVolumeData",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": BINARY}, "description": "Bytes"}},
)
async def read_data(
    volume_id: str,
    request: Request,
    actor: DataActorDep,
    offset: int = 0,
    length: int | None = None,
) -> StreamingResponse:
    volume = await run_in_threadpool(_open, get_runtime(request), actor, volume_id)
    if length is None:
        length = max(0, volume.size - offset)
    chunks: Iterator[bytes] = volume.read(offset, length)
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={"Content-Length": str(length)},
    )


@router.get(
    "/v2/{project_id}/cloudvolumes/{volume_id}/extents",
    operation_id="VolumeExtents",
    response_model=Extents,
)
def volume_extents(
    volume_id: str,
    actor: ActorDep,
    session: SessionDep,
    runtime: RuntimeDep,
    changed: bool = False,
) -> dict[str, Any]:
    """Ranges that may hold data (`changed=false`) or changed since the last backup."""
    volume = service.data_volume(runtime, session, actor, volume_id)
    extents = volume.changed_extents() if changed else volume.allocated_extents()
    return {
        "volume_id": volume_id,
        "size_bytes": volume.size,
        "extents": [{"offset": start, "length": count} for start, count in extents],
    }


routers = (
    server_router,
    external_router,
    nbd_router,
    resize_router,
    router,
    volume_admin_router,
    transfer_router,
    snapshot_router,
    recycle_router,
)
"""Every router of the slice, for the app to add route by route."""
