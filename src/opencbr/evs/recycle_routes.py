"""EVS recycle bin routes (`/v3/{project_id}/recycle-bin-volumes`; rules in `recycle`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from opencbr.core.clock import api_time
from opencbr.core.routing import JSONRoute
from opencbr.core.web import SessionDep
from opencbr.iam.auth import ActorDep

from . import recycle
from .history_responses import BinnedVolumeList, BinnedVolumeOne, RecyclePolicyOut
from .models import Disk, RecyclePolicy
from .recycle import PolicyChange
from .views import volume_view

__all__ = ["router"]

router = APIRouter(
    prefix="/v3/{project_id}/recycle-bin-volumes",
    tags=["evs", "evs-recycle-bin"],
    route_class=JSONRoute,
)
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    switch: bool | None = None
    threshold_time: int | None = None
    keep_time: int | None = None


def _binned_view(disk: Disk, base_url: str) -> dict[str, Any]:
    """EVS `RecycleBinVolume`: the disk's detail with its bin times."""
    return {
        **volume_view(disk, base_url),
        "pre_deleted_at": api_time(disk.recycled_at),
        "plan_delete_at": api_time(disk.purge_at),
        "dedicated_storage_id": None,
        "dedicated_storage_name": None,
    }


def _policy_view(policy: RecyclePolicy) -> dict[str, Any]:
    return {
        "switch": policy.enabled,
        "threshold_time": policy.threshold_days,
        "keep_time": policy.keep_days,
    }


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("/detail", operation_id="ListVolumesInRecycle", response_model=BinnedVolumeList)
def list_recycled(
    actor: ActorDep,
    session: SessionDep,
    request: Request,
    limit: Limit = 1000,
    offset: Offset = 0,
    name: str | None = None,
    status: str | None = None,
    availability_zone: str | None = None,
) -> dict[str, Any]:
    assert actor.project_id is not None
    where = {"name": name, "status": status, "availability_zone": availability_zone}
    found = recycle.list_recycled(session, actor.project_id, where, offset, limit)
    return {
        "count": recycle.count_recycled(session, actor.project_id, where),
        "volumes": [_binned_view(d, _base(request)) for d in found],
    }


@router.get("/policy", operation_id="ShowRecyclePolicy", response_model=RecyclePolicyOut)
def show_policy(actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    assert actor.project_id is not None
    return _policy_view(recycle.get_policy(session, actor.project_id))


@router.put("/policy", operation_id="UpdateRecyclePolicy", response_model=RecyclePolicyOut)
def update_policy(body: PolicyBody, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    change = PolicyChange(body.switch, body.threshold_time, body.keep_time)
    return _policy_view(recycle.update_policy(session, actor, change))


@router.get("/{volume_id}", operation_id="ShowVolumeInRecycle", response_model=BinnedVolumeOne)
def show_recycled(
    volume_id: str, actor: ActorDep, session: SessionDep, request: Request
) -> dict[str, Any]:
    assert actor.project_id is not None
    disk = recycle.recycled_disk(session, actor.project_id, volume_id)
    return {"volume": _binned_view(disk, _base(request))}


@router.post("/{volume_id}/revert", operation_id="RevertVolumeInRecycle")
def revert(volume_id: str, actor: ActorDep, session: SessionDep) -> Response:
    recycle.revert_disk(session, actor, volume_id)
    return Response(status_code=200)


@router.delete("/{volume_id}", operation_id="DeleteVolumeInRecycle")
def delete_recycled(volume_id: str, actor: ActorDep, session: SessionDep) -> Response:
    recycle.delete_recycled(session, actor, volume_id)
    return Response(status_code=200)
