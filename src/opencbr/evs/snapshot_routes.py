"""EVS v2 snapshot routes (`/v2/{project_id}/cloudsnapshots`; rules in `snapshots`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from opencbr.core.clock import api_time
from opencbr.core.idempotency import idempotent
from opencbr.core.routing import JSONRoute
from opencbr.core.web import RuntimeDep, SessionDep
from opencbr.iam.auth import ActorDep

from . import snapshots
from .errors import CLIENT_TOKEN_ERRORS
from .history_responses import RollbackAnswer, SnapshotList, SnapshotOne
from .models import Snapshot, SnapshotStatus
from .snapshots import SnapshotFilter, SnapshotSpec

__all__ = ["router", "snapshot_view"]

router = APIRouter(
    prefix="/v2/{project_id}/cloudsnapshots", tags=["evs", "evs-snapshots"], route_class=JSONRoute
)
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SnapshotIn(_Body):
    volume_id: str = Field(max_length=64)
    force: bool = False
    metadata: dict[str, Annotated[str, Field(max_length=255)]] = Field(default_factory=dict)
    description: str = ""
    name: str = ""


class CreateSnapshotBody(_Body):
    snapshot: SnapshotIn


class SnapshotChanges(_Body):
    name: str | None = None
    description: str | None = None


class UpdateSnapshotBody(_Body):
    snapshot: SnapshotChanges


class RollbackIn(_Body):
    volume_id: str | None = Field(default=None, max_length=64)
    name: str | None = None


class RollbackBody(_Body):
    rollback: RollbackIn


def snapshot_view(snapshot: Snapshot) -> dict[str, Any]:
    """EVS `SnapshotList` (a superset of `SnapshotDetails`)."""
    progress = "100%" if snapshot.status != SnapshotStatus.CREATING else "0%"
    return {
        "id": snapshot.id,
        "status": snapshot.status,
        "name": snapshot.name,
        "description": snapshot.description,
        "created_at": api_time(snapshot.created_at),
        "updated_at": api_time(snapshot.updated_at),
        "metadata": dict(snapshot.metadata_),
        "volume_id": snapshot.volume_id,
        "size": snapshot.size_gb,
        "os-extended-snapshot-attributes:project_id": snapshot.project_id,
        "os-extended-snapshot-attributes:progress": progress,
        "dedicated_storage_id": None,
        "dedicated_storage_name": None,
        "service_type": "EVS",
    }


@router.post("", status_code=202, operation_id="CreateSnapshot", response_model=SnapshotOne)
@idempotent(CLIENT_TOKEN_ERRORS)
def create_snapshot(body: CreateSnapshotBody, actor: ActorDep, session: SessionDep) -> Any:
    given = body.snapshot
    spec = SnapshotSpec(given.volume_id, given.name, given.description, given.metadata, given.force)
    snapshot, _ = snapshots.create_snapshot(session, actor, spec)
    return {"snapshot": snapshot_view(snapshot)}


@router.get("/detail", operation_id="ListSnapshots", response_model=SnapshotList)
def list_snapshots(
    actor: ActorDep,
    session: SessionDep,
    request: Request,
    limit: Limit = 1000,
    offset: Offset = 0,
    name: str | None = None,
    status: str | None = None,
    volume_id: str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    assert actor.project_id is not None
    where = SnapshotFilter(name, status, volume_id, id)
    found = snapshots.list_snapshots(session, actor.project_id, where, offset, limit)
    return {
        "count": snapshots.count_snapshots(session, actor.project_id, where),
        "snapshots": [snapshot_view(s) for s in found],
        "snapshots_links": [],
    }


@router.get("/{snapshot_id}", operation_id="ShowSnapshot", response_model=SnapshotOne)
def show_snapshot(snapshot_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    assert actor.project_id is not None
    return {
        "snapshot": snapshot_view(snapshots.get_snapshot(session, actor.project_id, snapshot_id))
    }


@router.put("/{snapshot_id}", operation_id="UpdateSnapshot", response_model=SnapshotOne)
def update_snapshot(
    snapshot_id: str, body: UpdateSnapshotBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    changes = body.snapshot
    snapshot = snapshots.update_snapshot(
        session, actor, snapshot_id, changes.name, changes.description
    )
    return {"snapshot": snapshot_view(snapshot)}


@router.delete("/{snapshot_id}", status_code=204, operation_id="DeleteSnapshot")
def delete_snapshot(
    snapshot_id: str, actor: ActorDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    snapshots.delete_snapshot(runtime, session, actor, snapshot_id)
    return Response(status_code=204)


@router.post(
    "/{snapshot_id}/rollback",
    status_code=202,
    operation_id="RollbackSnapshot",
    response_model=RollbackAnswer,
)
def rollback_snapshot(
    snapshot_id: str, body: RollbackBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    given = body.rollback
    _, disk, _ = snapshots.rollback_snapshot(
        session, actor, snapshot_id, given.volume_id, given.name
    )
    return {"rollback": {"volume_id": disk.id}}
