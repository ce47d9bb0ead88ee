"""KMS update-key-alias / update-key-description routes (rules in `key_settings`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from opencbr.core.routing import JSONRoute
from opencbr.core.web import SessionDep
from opencbr.iam.auth import ActorDep

from . import key_settings
from .responses import KeyDescription, KeyNamed
from .schemas import KeyBody

__all__ = ["router"]

router = APIRouter(prefix="/v1.0/{project_id}/kms", tags=["kms"], route_class=JSONRoute)


class AliasBody(KeyBody):
    key_alias: str | None = None


class DescriptionBody(KeyBody):
    key_description: str | None = None


@router.post("/update-key-alias", operation_id="UpdateKeyAlias", response_model=KeyNamed)
def update_key_alias(body: AliasBody, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    key = key_settings.rename_key(session, actor, body.key_id, body.key_alias)
    return {"key_info": {"key_id": key.id, "key_alias": key.alias}}


@router.post(
    "/update-key-description", operation_id="UpdateKeyDescription", response_model=KeyDescription
)
def update_key_description(
    body: DescriptionBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    key = key_settings.describe_key(session, actor, body.key_id, body.key_description)
    return {"key_info": {"key_id": key.id, "key_description": key.description}}
