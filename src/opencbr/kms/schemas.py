"""KMS v1.0 request bodies (every field optional, so a missing one answers KMS.0204) and views."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from opencbr.core.clock import utcnow
from opencbr.core.numbers import whole_number

from .errors import KmsValidationFailed
from .models import Grant, Key

__all__ = [
    "CreateGrantBody",
    "CreateKeyBody",
    "DataKeyBody",
    "DecryptDataKeyBody",
    "EncryptDataKeyBody",
    "GrantBody",
    "KeyBody",
    "ListGrantsBody",
    "ListKeysBody",
    "PageBody",
    "ScheduleDeletionBody",
    "epoch_ms",
    "grant_view",
    "key_view",
    "page",
    "paged",
]

Number = str | int | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")
    sequence: str | None = None


class KeyBody(_Body):
    key_id: str | None = None


class CreateKeyBody(_Body):
    key_alias: str | None = None
    key_spec: str | None = None
    key_usage: str | None = None
    key_description: str | None = None
    origin: str | None = None


class PageBody(_Body):
    limit: Number = None
    marker: Number = None


class ListKeysBody(PageBody):
    key_state: str | None = None
    key_spec: str | None = None


class ScheduleDeletionBody(KeyBody):
    pending_days: Number = None


class DataKeyBody(KeyBody):
    key_spec: str | None = None
    datakey_length: Number = None
    additional_authenticated_data: str | None = None


class EncryptDataKeyBody(KeyBody):
    plain_text: str | None = None
    datakey_plain_length: Number = None
    additional_authenticated_data: str | None = None


class DecryptDataKeyBody(KeyBody):
    cipher_text: str | None = None
    datakey_cipher_length: Number = None
    additional_authenticated_data: str | None = None


class CreateGrantBody(KeyBody):
    grantee_principal: str | None = None
    grantee_principal_type: str | None = None
    operations: list[str] | None = None
    name: str | None = None
    retiring_principal: str | None = None


class ListGrantsBody(KeyBody, PageBody):
    pass


class GrantBody(KeyBody):
    grant_id: str | None = None


def epoch_ms(value: datetime | None) -> str:
    if value is None:
        return ""
    return str(int(value.replace(tzinfo=UTC).timestamp() * 1000))


def key_view(key: Key) -> dict[str, Any]:
    return {
        "key_id": key.id,
        "domain_id": key.domain_id,
        "key_alias": key.alias,
        "realm": key.region,
        "key_spec": key.key_spec,
        "key_usage": key.key_usage,
        "key_description": key.description,
        "creation_date": epoch_ms(key.created_at),
        "scheduled_deletion_date": epoch_ms(key.deletion_at),
        "key_state": key.state,
        "default_key_flag": "1" if key.default_key else "0",
        "key_type": "1",
        "expiration_time": "",
        "origin": "kms",
        "key_rotation_enabled": "false",
        "sys_enterprise_project_id": "0",
        "keystore_id": "0",
        # Fields real answers carry that the SDK's models lack.
        "keystore_type": "DEFAULT",
        "multi_region_key_type": "",
        "pending_days": _pending_days(key.deletion_at),
    }


def _pending_days(deletion_at: datetime | None) -> str:
    """Whole days (rounded up) until a key pending deletion is deleted; "" for any other key."""
    if deletion_at is None:
        return ""
    left = (deletion_at - utcnow()).total_seconds()
    return str(max(0, math.ceil(left / 86400)))


def grant_view(grant: Grant) -> dict[str, Any]:
    return {
        "key_id": grant.key_id,
        "grant_id": grant.id,
        "grantee_principal": grant.grantee_principal,
        "grantee_principal_type": grant.grantee_type,
        "operations": grant.operation_list,
        "issuing_principal": grant.issuing_principal,
        "retiring_principal": grant.retiring_principal or "",
        "name": grant.name,
        "creation_date": epoch_ms(grant.created_at),
    }


def page(body: PageBody) -> tuple[int, int | None]:
    """(offset, limit) from the wire's string `marker` (an offset) and `limit`."""
    values: list[int | None] = []
    for name, value, low in (("marker", body.marker, 0), ("limit", body.limit, 1)):
        if value in (None, ""):
            values.append(None)
            continue
        number = whole_number(value)
        if number is None or not low <= number <= 1000:
            raise KmsValidationFailed(reason=f"{name} must be a number {low}-1000")
        values.append(number)
    return values[0] or 0, values[1]


def paged(total: int, offset: int, shown: int) -> dict[str, Any]:
    more = offset + shown < total
    return {
        "next_marker": str(offset + shown) if more else "",
        "truncated": "true" if more else "false",
        "total": total,
    }
