"""KMS alias routes (rules in `aliases`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import Field

from opencbr.core.routing import JSONRoute
from opencbr.core.web import SessionDep
from opencbr.iam.auth import ActorDep

from . import aliases
from .models import KeyAlias
from .responses import AliasList, AliasOut
from .schemas import KeyBody, _Body, epoch_ms

__all__ = ["router"]

router = APIRouter(prefix="/v1.0/{project_id}/kms", tags=["kms"], route_class=JSONRoute)


class CreateAliasBody(KeyBody):
    alias: str | None = None


class DeleteAliasBody(KeyBody):
    aliases: list[str] = Field(default_factory=list, max_length=aliases.MAX_PER_KEY)


class AssociateAliasBody(_Body):
    alias: str | None = None
    target_key_id: str | None = None


def _view(alias: KeyAlias) -> dict[str, Any]:
    return {
        "domain_id": alias.domain_id,
        "key_id": alias.key_id,
        "alias": alias.alias,
        "alias_urn": aliases.urn(alias),
        "create_time": epoch_ms(alias.created_at),
        "update_time": epoch_ms(alias.updated_at),
    }


@router.post("/aliases", operation_id="CreateAlias", response_model=AliasOut)
def create_alias(body: CreateAliasBody, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    return _view(aliases.create_alias(session, actor, body.key_id, body.alias))


@router.delete("/aliases", operation_id="DeleteAlias")
def delete_alias(body: DeleteAliasBody, actor: ActorDep, session: SessionDep) -> Response:
    aliases.delete_aliases(session, actor, body.key_id, body.aliases)
    return Response(status_code=200)


@router.get("/aliases", operation_id="ListAliases", response_model=AliasList)
def list_aliases(
    actor: ActorDep,
    session: SessionDep,
    key_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    marker: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    """`marker` is the offset of the page, as `next_marker` gives it."""
    found, total = aliases.list_aliases(session, actor, key_id, marker, limit)
    more = marker + len(found) < total
    return {
        "aliases": [_view(a) for a in found],
        "page_info": {
            "next_marker": str(marker + len(found)) if more else "",
            "current_count": len(found),
        },
    }


@router.post("/alias/associate", operation_id="AssociateAlias", response_model=AliasOut)
def associate_alias(
    body: AssociateAliasBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    return _view(aliases.associate(session, actor, body.alias, body.target_key_id))
