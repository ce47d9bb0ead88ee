"""Backup sharing routes (members): AddMember, ShowMembersDetail, ShowMemberDetail,
UpdateMemberStatus, DeleteMember. The rules live in `members.py` (with `member_status.py` and
`member_ledger.py`).

The path's `member_id` is the recipient's project id (the SDK sends it so); the member's own
`id` is accepted too where the owner names a member.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from opencbr.core.idempotency import idempotent
from opencbr.core.routing import JSONRoute
from opencbr.core.web import SessionDep, json_response
from opencbr.iam.auth import ActorDep

from . import members
from .errors import CLIENT_TOKEN_ERRORS
from .responses import MemberList, MemberOne
from .schemas import AddMembersBody, UpdateMemberBody
from .views import member_view

__all__ = ["router"]

router = APIRouter(prefix="/v3/{project_id}", tags=["cbr", "cbr-sharing"], route_class=JSONRoute)


@router.post("/backups/{backup_id}/members", operation_id="AddMember", response_model=MemberList)
@idempotent(CLIENT_TOKEN_ERRORS)
def add_member(
    backup_id: str, body: AddMembersBody, actor: ActorDep, session: SessionDep
) -> JSONResponse:
    added = members.add_members(session, actor, backup_id, body.members, body.domains)
    return json_response({"members": [member_view(m) for m in added], "count": len(added)})


@router.get(
    "/backups/{backup_id}/members", operation_id="ShowMembersDetail", response_model=MemberList
)
def list_members(
    backup_id: str,
    actor: ActorDep,
    session: SessionDep,
    dest_project_id: str | None = None,
    image_id: str | None = None,
    status: str | None = None,
    vault_id: str | None = None,
    sort: str | None = None,
    marker: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    filters = members.MemberFilters(
        dest_project_id=dest_project_id,
        image_id=image_id,
        status=status,
        vault_id=vault_id,
        sort=sort,
        limit=limit,
        offset=offset,
        marker=marker,
    )
    found, count = members.list_members(session, actor, backup_id, filters)
    return {"members": [member_view(m) for m in found], "count": count}


@router.get(
    "/backups/{backup_id}/members/{member_id}",
    operation_id="ShowMemberDetail",
    response_model=MemberOne,
)
def show_member(
    backup_id: str, member_id: str, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    return {"member": member_view(members.find_member(session, actor, backup_id, member_id))}


@router.put(
    "/backups/{backup_id}/members/{member_id}",
    operation_id="UpdateMemberStatus",
    response_model=MemberOne,
)
@idempotent(CLIENT_TOKEN_ERRORS)
def update_member(
    backup_id: str, member_id: str, body: UpdateMemberBody, actor: ActorDep, session: SessionDep
) -> JSONResponse:
    member = members.update_member_status(
        session, actor, backup_id, member_id, body.status, body.vault_id, body.auto_bind
    )
    return json_response({"member": member_view(member)})


@router.delete(
    "/backups/{backup_id}/members/{member_id}", status_code=204, operation_id="DeleteMember"
)
def delete_member(backup_id: str, member_id: str, actor: ActorDep, session: SessionDep) -> Response:
    members.delete_member(session, actor, backup_id, member_id)
    return Response(status_code=204)
