"""EVS disk transfer routes (`/v2/{project_id}/os-volume-transfer`; rules in `transfers`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from opencbr.core.clock import api_time
from opencbr.core.routing import JSONRoute
from opencbr.core.web import SessionDep
from opencbr.iam.auth import ActorDep

from . import transfers
from .models import DiskTransfer
from .responses_more import TransferList, TransferOne

__all__ = ["router"]

router = APIRouter(
    prefix="/v2/{project_id}/os-volume-transfer",
    tags=["evs", "evs-transfers"],
    route_class=JSONRoute,
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TransferIn(_Body):
    volume_id: str = Field(max_length=64)
    name: str = Field(default="", max_length=255)


class CreateTransferBody(_Body):
    transfer: TransferIn


class AcceptIn(_Body):
    auth_key: str = Field(max_length=64)


class AcceptBody(_Body):
    accept: AcceptIn


def _summary(request: Request, transfer: DiskTransfer) -> dict[str, Any]:
    href = f"{str(request.base_url).rstrip('/')}/v2/{transfer.project_id}/os-volume-transfer"
    return {
        "id": transfer.id,
        "name": transfer.name,
        "volume_id": transfer.volume_id,
        "links": [{"href": f"{href}/{transfer.id}", "rel": "self"}],
    }


def _detail(request: Request, transfer: DiskTransfer) -> dict[str, Any]:
    return {**_summary(request, transfer), "created_at": api_time(transfer.created_at)}


@router.post(
    "", status_code=202, operation_id="CinderCreateVolumeTransfer", response_model=TransferOne
)
def create_transfer(
    body: CreateTransferBody, request: Request, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    made = transfers.offer(session, actor, body.transfer.volume_id, body.transfer.name)
    return {"transfer": {**_detail(request, made.transfer), "auth_key": made.auth_key}}


@router.get("", operation_id="CinderListVolumeTransfers", response_model=TransferList)
def list_transfers(
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    found, _ = transfers.list_offers(session, actor, limit, offset)
    return {"transfers": [_summary(request, t) for t in found]}


@router.get("/{transfer_id}", operation_id="CinderShowVolumeTransfer", response_model=TransferOne)
def show_transfer(
    transfer_id: str, request: Request, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    return {"transfer": _detail(request, transfers.get_offer(session, actor, transfer_id))}


@router.delete("/{transfer_id}", status_code=202, operation_id="CinderDeleteVolumeTransfer")
def delete_transfer(transfer_id: str, actor: ActorDep, session: SessionDep) -> Response:
    transfers.withdraw(session, actor, transfer_id)
    return Response(status_code=202)


@router.post(
    "/{transfer_id}/accept",
    status_code=202,
    operation_id="CinderAcceptVolumeTransfer",
    response_model=TransferOne,
)
def accept_transfer(
    transfer_id: str, body: AcceptBody, request: Request, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    accepted = transfers.accept(session, actor, transfer_id, body.accept.auth_key)
    return {"transfer": _summary(request, accepted)}
