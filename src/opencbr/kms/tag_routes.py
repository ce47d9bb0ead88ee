"""KMS key tag routes (rules in `key_tags`)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from opencbr.core.numbers import whole_number
from opencbr.core.routing import JSONRoute
from opencbr.core.web import SessionDep
from opencbr.iam.auth import ActorDep

from . import key_tags
from .errors import KmsValidationFailed
from .responses import KeysByTags, KeyTags, ProjectKeyTags
from .schemas import key_view

__all__ = ["router"]

router = APIRouter(prefix="/v1.0/{project_id}/kms", tags=["kms"], route_class=JSONRoute)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TagIn(_Body):
    key: str = Field(max_length=key_tags.MAX_KEY)
    value: str = Field(default="", max_length=key_tags.MAX_VALUE)


class CreateTagBody(_Body):
    tag: TagIn


class BatchTagsBody(_Body):
    action: Literal["create", "delete"]
    tags: list[TagIn] = Field(min_length=1, max_length=key_tags.MAX_TAGS)


class TagValuesIn(_Body):
    key: str = Field(max_length=key_tags.MAX_KEY)
    values: list[str] = Field(default_factory=list, max_length=10)


class MatchIn(_Body):
    key: Literal["resource_name"]
    value: str = Field(default="", max_length=255)


class ByTagsBody(_Body):
    action: Literal["filter", "count"]
    tags: list[TagValuesIn] = Field(default_factory=list, max_length=10)
    matches: list[MatchIn] = Field(default_factory=list, max_length=1)
    limit: str | None = Field(default=None, max_length=4)
    offset: str | None = Field(default=None, max_length=10)


def _number(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value in (None, ""):
        return default
    number = whole_number(value)  # ASCII digits only: str.isdigit also takes "²"
    if number is None or not low <= number <= high:
        raise KmsValidationFailed(reason=f"{name} must be a whole number {low}-{high}")
    return number


def _unique(tags: list[TagIn]) -> dict[str, str]:
    found = {t.key: t.value for t in tags}
    if len(found) != len(tags):
        raise KmsValidationFailed(reason="a tag key is given twice")
    return found


@router.post("/{key_id}/tags", status_code=204, operation_id="CreateKmsTag")
def create_kms_tag(
    key_id: str, body: CreateTagBody, actor: ActorDep, session: SessionDep
) -> Response:
    key_tags.set_tags(session, actor, key_id, {body.tag.key: body.tag.value})
    return Response(status_code=204)


@router.post("/{key_id}/tags/action", status_code=204, operation_id="BatchCreateKmsTags")
def batch_kms_tags(
    key_id: str, body: BatchTagsBody, actor: ActorDep, session: SessionDep
) -> Response:
    if body.action == "create":
        key_tags.set_tags(session, actor, key_id, _unique(body.tags))
    else:
        key_tags.remove_tags(session, actor, key_id, [t.key for t in body.tags], strict=False)
    return Response(status_code=204)


@router.delete("/{key_id}/tags/{key}", status_code=204, operation_id="DeleteTag")
def delete_tag(key_id: str, key: str, actor: ActorDep, session: SessionDep) -> Response:
    key_tags.remove_tags(session, actor, key_id, [key], strict=True)
    return Response(status_code=204)


@router.get("/{key_id}/tags", operation_id="ShowKmsTags", response_model=KeyTags)
def show_kms_tags(key_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    tags = key_tags.key_tags(session, actor, key_id)
    return {"tags": [{"key": k, "value": v} for k, v in tags.items()], "existTagsNum": len(tags)}


@router.get("/tags", operation_id="ListKmsTags", response_model=ProjectKeyTags)
def list_kms_tags(actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    return {"tags": key_tags.project_tags(session, actor)}


@router.post("/resource_instances/action", operation_id="ListKmsByTags", response_model=KeysByTags)
def list_kms_by_tags(body: ByTagsBody, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    tags = {t.key: t.values for t in body.tags}
    if len(tags) != len(body.tags):
        raise KmsValidationFailed(reason="a tag key is given twice")
    limit = _number(body.limit, "limit", 1000, 1, 1000)
    offset = _number(body.offset, "offset", 0, 0, 2**31 - 1)
    alias = body.matches[0].value if body.matches else None
    found, total = key_tags.find_keys(session, actor, tags, alias, limit, offset)
    if body.action == "count":
        return {"resources": [], "total_count": total}
    resources = [
        {
            "resource_id": key.id,
            "resource_name": key.alias,
            "resource_detail": key_view(key),
            "tags": [{"key": k, "value": v} for k, v in (key.tags or {}).items()],
        }
        for key in found
    ]
    return {"resources": resources, "total_count": total}
