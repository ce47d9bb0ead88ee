"""EVS routes for disk settings and the project's disk catalogue (rules in `volume_admin`):
UpdateVolume, volume tags, availability zones, disk types and quotas."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from opencbr.core.routing import JSONRoute
from opencbr.core.web import SessionDep
from opencbr.iam.auth import ActorDep

from . import volume_admin
from .errors import EvsValidationFailed
from .models import Disk
from .responses_more import (
    AvailabilityZones,
    QuotaSetOne,
    UpdatedVolume,
    VolumeProjectTags,
    VolumesByTags,
    VolumeTags,
    VolumeTypes,
)
from .views import volume_view
from .volume_admin import Usage

__all__ = ["router"]

router = APIRouter(prefix="/v2/{project_id}", tags=["evs", "evs-admin"], route_class=JSONRoute)
UNLIMITED = -1


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class VolumeChanges(_Body):
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=255)


class UpdateVolumeBody(_Body):
    volume: VolumeChanges


class TagIn(_Body):
    key: str = Field(max_length=volume_admin.MAX_KEY)
    value: str = Field(default="", max_length=volume_admin.MAX_VALUE)


class TagsActionBody(_Body):
    action: Literal["create", "delete"]
    tags: list[TagIn] = Field(min_length=1, max_length=volume_admin.MAX_TAGS)


@router.put("/cloudvolumes/{volume_id}", operation_id="UpdateVolume", response_model=UpdatedVolume)
def update_volume(
    volume_id: str, body: UpdateVolumeBody, request: Request, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    disk = volume_admin.update_disk(
        session, actor, volume_id, body.volume.name, body.volume.description
    )
    view = volume_view(disk, str(request.base_url).rstrip("/"))
    return {"source_volid": None, "os-volume-replication:extended_status": None, **view}


@router.get("/cloudvolumes/tags", operation_id="ListVolumeTags", response_model=VolumeProjectTags)
def list_volume_tags(actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    return {"tags": volume_admin.project_tags(session, actor)}


@router.get(
    "/cloudvolumes/{volume_id}/tags", operation_id="ShowVolumeTags", response_model=VolumeTags
)
def show_volume_tags(volume_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    tags = volume_admin.disk_tags(session, actor, volume_id)
    return {"tags": [{"key": k, "value": v} for k, v in tags.items()]}


@router.post(
    "/cloudvolumes/{volume_id}/tags/action",
    status_code=204,
    operation_id="BatchCreateOrDeleteVolumeTags",
)
def volume_tags_action(
    volume_id: str, body: TagsActionBody, actor: ActorDep, session: SessionDep
) -> Response:
    if body.action == "create":
        tags = {t.key: t.value for t in body.tags}
        if len(tags) != len(body.tags):
            raise EvsValidationFailed(reason="a tag key is given twice")
        volume_admin.set_tags(session, actor, volume_id, tags)
    else:
        volume_admin.remove_tags(session, actor, volume_id, [t.key for t in body.tags])
    return Response(status_code=204)


class TagValuesIn(_Body):
    key: str = Field(max_length=volume_admin.MAX_KEY)
    values: list[str] = Field(default_factory=list, max_length=10)


class MatchIn(_Body):
    key: Literal["resource_name"]
    value: str = Field(default="", max_length=255)


class ByTagsBody(_Body):
    action: Literal["filter"]
    tags: list[TagValuesIn] = Field(default_factory=list, max_length=10)
    matches: list[MatchIn] = Field(default_factory=list, max_length=1)
    limit: int = Field(default=1000, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=2**31 - 1)


# Fields of a disk found by tags that this service has no use for, with the vendor's nulls.
_UNUSED_DETAIL: dict[str, Any] = dict.fromkeys(
    (
        "source_volid",
        "consistencygroup_id",
        "os-volume-replication:extended_status",
        "os-vol-mig-status-attr:migstat",
        "os-vol-mig-status-attr:name_id",
        "dedicated_storage_id",
        "dedicated_storage_name",
    )
)


def _detail(disk: Disk, base_url: str) -> dict[str, Any]:
    detail: dict[str, Any] = {**_UNUSED_DETAIL, "enterprise_project_id": "0"}
    detail.update(volume_view(disk, base_url))
    return detail


@router.post(
    "/cloudvolumes/resource_instances/action",
    operation_id="ListVolumesByTags",
    response_model=VolumesByTags,
)
def list_volumes_by_tags(
    body: ByTagsBody, request: Request, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    tags = {t.key: t.values for t in body.tags}
    if len(tags) != len(body.tags):
        raise EvsValidationFailed(reason="a tag key is given twice")
    name = body.matches[0].value if body.matches else None
    found, total = volume_admin.find_by_tags(session, actor, tags, name, body.limit, body.offset)
    base = str(request.base_url).rstrip("/")
    resources: list[dict[str, Any]] = [
        {
            "resource_id": disk.id,
            "resource_name": disk.name,
            "resource_detail": _detail(disk, base),
            "tags": [{"key": k, "value": v} for k, v in (disk.tags or {}).items()],
        }
        for disk in found
    ]
    return {"resources": resources, "total_count": total}


@router.get(
    "/os-availability-zone",
    operation_id="CinderListAvailabilityZones",
    response_model=AvailabilityZones,
)
def list_availability_zones(actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    zones = volume_admin.availability_zones(session, actor)
    return {
        "availabilityZoneInfo": [
            {"zoneName": zone, "zoneState": {"available": True}} for zone in zones
        ]
    }


@router.get("/types", operation_id="CinderListVolumeTypes", response_model=VolumeTypes)
def list_volume_types(actor: ActorDep) -> dict[str, Any]:
    types = [
        {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"opencbr:volume-type:{name}")),
            "name": name,
            "description": f"{name} (all types are the same storage here)",
            "extra_specs": {
                "volume_backend_name": name,
                "availability-zone": "az1",
                "RESKEY:availability_zones": "az1",
                "HW:availability_zone": "az1",
                "os-vendor-extended:sold_out_availability_zones": "",
            },
            "qos_specs_id": None,
            "is_public": True,
        }
        for name in volume_admin.volume_types()
    ]
    return {"volume_types": types}


def _quota(in_use: int, limit: int = UNLIMITED) -> dict[str, int]:
    return {"in_use": in_use, "limit": limit, "reserved": 0}


def _quota_set(project_id: str, used: Usage) -> dict[str, Any]:
    quota: dict[str, Any] = {
        "id": project_id,
        "volumes": _quota(used.volumes),
        "gigabytes": _quota(used.gigabytes),
        "snapshots": _quota(sum(used.snapshots_by_type.values())),
        "backups": _quota(0),
        "backup_gigabytes": _quota(0),
        "per_volume_gigabytes": _quota(0, used.per_volume_gigabytes),
    }
    for kind in ("SATA", "SAS", "SSD"):
        disks, size = used.by_type.get(kind, (0, 0))
        quota[f"volumes_{kind}"] = _quota(disks)
        quota[f"gigabytes_{kind}"] = _quota(size)
        quota[f"snapshots_{kind}"] = _quota(used.snapshots_by_type.get(kind, 0))
    return quota


@router.get(
    "/os-quota-sets/{target_project_id}",
    operation_id="CinderListQuotas",
    response_model=QuotaSetOne,
)
def list_quotas(
    target_project_id: str,
    actor: ActorDep,
    session: SessionDep,
    usage: Annotated[str | None, Query(max_length=8)] = None,
) -> dict[str, Any]:
    """Quotas with what the project uses; nothing limits a project here (limit -1)."""
    used = volume_admin.usage(session, actor, target_project_id)
    return {"quota_set": _quota_set(target_project_id, used)}
