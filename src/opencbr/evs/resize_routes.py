"""EVS `ResizeVolume`: `POST /v2.1/{project_id}/cloudvolumes/{volume_id}/action` with
`os-extend` (rules in `resize`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from opencbr.core.routing import JSONRoute
from opencbr.core.web import SessionDep
from opencbr.iam.auth import ActorDep

from . import resize
from .responses import JobAnswer

__all__ = ["router"]

router = APIRouter(tags=["evs", "evs-resize"], route_class=JSONRoute)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class OsExtend(_Body):
    new_size: int | None = Field(default=None, ge=1)


class ResizeBody(_Body):
    os_extend: OsExtend = Field(alias="os-extend")
    bss_param: dict[str, Any] | None = Field(default=None, alias="bssParam")


@router.post(
    "/v2.1/{project_id}/cloudvolumes/{volume_id}/action",
    status_code=202,
    operation_id="ResizeVolume",
    response_model=JobAnswer,
)
def resize_volume(
    volume_id: str, body: ResizeBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    job = resize.extend_disk(session, actor, volume_id, body.os_extend.new_size)
    return {"job_id": job.id}
