"""Our NBD extension: open and close the NBD export of a disk, or of a server's disks.

* `POST /v2/{project_id}/cloudvolumes/{volume_id}/nbd` `{"read_only": false}` →
  `{"export": {"volume_id", "uri", "export_name", "host", "port", "read_only", "tls"}}`
  (`uri` is `nbds://...` and `tls` "psk" or "x509" when the NBD server requires TLS)
* `GET /v2/{project_id}/cloudvolumes/{volume_id}/nbd` → the open export (404 EVS.0420: none)
* `DELETE /v2/{project_id}/cloudvolumes/{volume_id}/nbd` → `{"volume_id", "closed": true}`
* `POST /v1/{project_id}/servers/{server_id}/nbd` → `{"exports": [...]}` in boot order
* `DELETE /v1/{project_id}/servers/{server_id}/nbd` → `{"server_id", "closed": N}`

The rules are in `nbd.exports`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from opencbr.core.routing import JSONRoute
from opencbr.core.web import RuntimeDep, SessionDep
from opencbr.iam.auth import ActorDep

from . import nbd
from .errors import NbdExportNotFound
from .responses import NbdClosed, NbdExportList, NbdExportOne, ServerClosed

__all__ = ["NbdOpenBody", "router"]

router = APIRouter(tags=["evs"], route_class=JSONRoute)


class NbdOpenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    read_only: bool = False


@router.post(
    "/v2/{project_id}/cloudvolumes/{volume_id}/nbd",
    operation_id="OpenVolumeNbd",
    response_model=NbdExportOne,
)
def open_volume_nbd(
    volume_id: str,
    actor: ActorDep,
    session: SessionDep,
    runtime: RuntimeDep,
    body: NbdOpenBody | None = None,
) -> dict[str, Any]:
    read_only = body is not None and body.read_only
    view = nbd.open_export(session, runtime, actor, volume_id, read_only=read_only)
    return {"export": asdict(view)}


@router.get(
    "/v2/{project_id}/cloudvolumes/{volume_id}/nbd",
    operation_id="ShowVolumeNbd",
    response_model=NbdExportOne,
)
def show_volume_nbd(volume_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    view = nbd.show_export(session, actor, volume_id)
    if view is None:
        raise NbdExportNotFound(id=volume_id)
    return {"export": asdict(view)}


@router.delete(
    "/v2/{project_id}/cloudvolumes/{volume_id}/nbd",
    operation_id="CloseVolumeNbd",
    response_model=NbdClosed,
)
def close_volume_nbd(volume_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    nbd.close_export(session, actor, volume_id)
    return {"volume_id": volume_id, "closed": True}


@router.post(
    "/v1/{project_id}/servers/{server_id}/nbd",
    operation_id="OpenServerNbd",
    response_model=NbdExportList,
)
def open_server_nbd(
    server_id: str,
    actor: ActorDep,
    session: SessionDep,
    runtime: RuntimeDep,
    body: NbdOpenBody | None = None,
) -> dict[str, Any]:
    read_only = body is not None and body.read_only
    views = nbd.open_server_exports(session, runtime, actor, server_id, read_only=read_only)
    return {"exports": [asdict(v) for v in views]}


@router.delete(
    "/v1/{project_id}/servers/{server_id}/nbd",
    operation_id="CloseServerNbd",
    response_model=ServerClosed,
)
def close_server_nbd(server_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    closed = nbd.close_server_exports(session, actor, server_id)
    return {"server_id": server_id, "closed": closed}
