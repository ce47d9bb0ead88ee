"""CBR vault tag routes (`/vault/...`, singular as the vendor spells them): rules in
`vault_tags`."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from opencbr.core.errors import ValidationFailed
from opencbr.core.numbers import whole_number
from opencbr.core.routing import JSONRoute
from opencbr.core.web import SessionDep
from opencbr.iam.auth import ActorDep

from . import vault_tags
from .responses_more import VaultProjectTags, VaultResourceInstances, VaultTags
from .vault_views import vault_out

__all__ = ["router"]

router = APIRouter(prefix="/v3/{project_id}", tags=["cbr", "cbr-tags"], route_class=JSONRoute)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TagIn(_Body):
    key: str = Field(max_length=vault_tags.MAX_KEY)
    value: str = Field(default="", max_length=vault_tags.MAX_VALUE)


class CreateTagBody(_Body):
    tag: TagIn


class BatchTagsBody(_Body):
    action: Literal["create", "delete"]
    tags: list[TagIn] = Field(min_length=1, max_length=vault_tags.MAX_TAGS)


class TagValuesIn(_Body):
    key: str = Field(max_length=vault_tags.MAX_KEY)
    values: list[str] = Field(default_factory=list, max_length=10)


class MatchIn(_Body):
    key: Literal["resource_name"]
    value: str = Field(default="", max_length=255)


class ResourceInstancesBody(_Body):
    action: Literal["filter", "count"]
    without_any_tag: bool = False
    tags: list[TagValuesIn] | None = Field(default=None, min_length=1, max_length=10)
    tags_any: list[TagValuesIn] | None = Field(default=None, min_length=1, max_length=10)
    not_tags: list[TagValuesIn] | None = Field(default=None, min_length=1, max_length=10)
    not_tags_any: list[TagValuesIn] | None = Field(default=None, min_length=1, max_length=10)
    matches: list[MatchIn] | None = Field(default=None, max_length=1)
    limit: str | None = None
    offset: str | None = None
    cloud_type: str | None = None
    object_type: str | None = None


def _tags(given: list[TagIn]) -> list[dict[str, str]]:
    return [{"key": t.key, "value": t.value} for t in given]


def _by_key(given: list[TagValuesIn] | None) -> dict[str, list[str]] | None:
    if given is None:
        return None
    keys = [t.key for t in given]
    if len(set(keys)) != len(keys):
        raise ValidationFailed(reason="a tag key is given twice in one condition")
    return {t.key: t.values for t in given}


def _number(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value in (None, ""):
        return default
    number = whole_number(value)  # ASCII digits only: str.isdigit also takes "²"
    if number is None or not low <= number <= high:
        raise ValidationFailed(reason=f"{name} must be a whole number {low}-{high}")
    return number


@router.post("/vault/{vault_id}/tags", status_code=204, operation_id="CreateVaultTags")
def create_vault_tags(
    vault_id: str, body: CreateTagBody, actor: ActorDep, session: SessionDep
) -> Response:
    vault_tags.set_tags(session, actor, vault_id, _tags([body.tag]))
    return Response(status_code=204)


@router.post(
    "/vault/{vault_id}/tags/action", status_code=204, operation_id="BatchCreateAndDeleteVaultTags"
)
def batch_vault_tags(
    vault_id: str, body: BatchTagsBody, actor: ActorDep, session: SessionDep
) -> Response:
    if body.action == "create":
        vault_tags.set_tags(session, actor, vault_id, _tags(body.tags))
    else:
        vault_tags.unset_tags(session, actor, vault_id, _tags(body.tags))
    return Response(status_code=204)


@router.delete("/vault/{vault_id}/tags/{key}", status_code=204, operation_id="DeleteVaultTag")
def delete_vault_tag(vault_id: str, key: str, actor: ActorDep, session: SessionDep) -> Response:
    vault_tags.delete_tag(session, actor, vault_id, key)
    return Response(status_code=204)


@router.get("/vault/{vault_id}/tags", operation_id="ShowVaultTag", response_model=VaultTags)
def show_vault_tag(vault_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    return {"tags": vault_tags.vault_tags(session, actor, vault_id), "sys_tags": []}


@router.get("/vault/tags", operation_id="ShowVaultProjectTag", response_model=VaultProjectTags)
def show_vault_project_tag(actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    return {"tags": vault_tags.project_tags(session, actor)}


@router.post(
    "/vault/resource_instances/action",
    operation_id="ShowVaultResourceInstances",
    response_model=VaultResourceInstances,
)
def show_vault_resource_instances(
    body: ResourceInstancesBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    query = vault_tags.TagQuery(
        tags=_by_key(body.tags),
        tags_any=_by_key(body.tags_any),
        not_tags=_by_key(body.not_tags),
        not_tags_any=_by_key(body.not_tags_any),
        without_any_tag=body.without_any_tag,
        name_contains=body.matches[0].value if body.matches else None,
        object_type=body.object_type,
        cloud_type=body.cloud_type,
    )
    limit = _number(body.limit, "limit", 1000, 1, 1000)
    offset = _number(body.offset, "offset", 0, 0, 2**31 - 1)
    found, total = vault_tags.find_vaults(session, actor, query, limit, offset)
    if body.action == "count":
        return {"total_count": total}
    resources = [
        {
            "resource_id": vault.id,
            "resource_name": vault.name,
            "resource_detail": {"vault": vault_out(session, vault)},
            "tags": list(vault.tags or []),
            "sys_tags": [],
        }
        for vault in found
    ]
    return {"resources": resources, "total_count": total}
