"""Our API extension for external disks (NBD sources); the disks themselves are ordinary
EVS volumes afterwards (ShowVolume, ListVolumes, DeleteVolume, CBR vaults and backups).

* `POST /v2/{project_id}/cloudvolumes/external` — body ``{"volume": {"name", "nbd_uri",
  "bitmap"?, "tls_psk_file"?, "description"?, "availability_zone"?}}``; answers the new
  volume (status `available`) with its ``external_source``. A bad URI, an unreachable server
  or a missing bitmap answers 400 (EVS.0433) and registers nothing.
* `GET /v2/{project_id}/cloudvolumes/external` — the project's external disks with sources.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from opencbr.core.idempotency import idempotent
from opencbr.core.routing import JSONRoute
from opencbr.core.web import RuntimeDep, SessionDep
from opencbr.iam.auth import ActorDep

from .errors import CLIENT_TOKEN_ERRORS
from .external import (
    ExternalDiskSpec,
    external_sources,
    list_external_disks,
    register_external_disk,
)
from .external_models import ExternalDisk
from .models import Disk
from .responses import ExternalVolumeList, ExternalVolumeOne
from .views import volume_view

__all__ = ["RegisterExternalBody", "router", "source_view"]

router = APIRouter(tags=["evs"], route_class=JSONRoute)


class ExternalVolumeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    nbd_uri: str = Field(min_length=1, max_length=1024)
    bitmap: str = Field(default="", max_length=1023)
    tls_psk_file: str = Field(default="", max_length=1024)
    description: str = Field(default="", max_length=255)
    availability_zone: str = Field(default="az1", min_length=1, max_length=64)


class RegisterExternalBody(BaseModel):
    volume: ExternalVolumeIn


def source_view(row: ExternalDisk) -> dict[str, Any]:
    return {
        "type": "nbd",
        "uri": row.uri,
        "bitmap": row.bitmap,
        "tls": bool(row.tls_psk_file),
        "size_bytes": row.size_bytes,
    }


def _view(disk: Disk, row: ExternalDisk, base_url: str) -> dict[str, Any]:
    return {**volume_view(disk, base_url), "external_source": source_view(row)}


@router.post(
    "/v2/{project_id}/cloudvolumes/external",
    status_code=200,
    operation_id="RegisterExternalVolume",
    response_model=ExternalVolumeOne,
)
@idempotent(CLIENT_TOKEN_ERRORS)
def register_external_volume(
    body: RegisterExternalBody,
    actor: ActorDep,
    session: SessionDep,
    runtime: RuntimeDep,
    request: Request,
) -> dict[str, Any]:
    given = body.volume
    spec = ExternalDiskSpec(
        name=given.name,
        uri=given.nbd_uri,
        bitmap=given.bitmap,
        tls_psk_file=given.tls_psk_file,
        description=given.description,
        availability_zone=given.availability_zone,
    )
    disk = register_external_disk(session, runtime, actor, spec)
    row = external_sources(session, [disk.id])[disk.id]
    return {"volume": _view(disk, row, str(request.base_url).rstrip("/"))}


@router.get(
    "/v2/{project_id}/cloudvolumes/external",
    operation_id="ListExternalVolumes",
    response_model=ExternalVolumeList,
)
def list_external_volumes(actor: ActorDep, session: SessionDep, request: Request) -> dict[str, Any]:
    assert actor.project_id is not None
    base_url = str(request.base_url).rstrip("/")
    pairs = list_external_disks(session, actor.project_id)
    volumes = [_view(disk, row, base_url) for disk, row in pairs]
    return {"count": len(volumes), "volumes": volumes}
