"""KMS v1.0 wire API (`/v1.0/{project_id}/kms/...`, every call a POST with a JSON body).

Thin: parse, call `keys`, `grants` or `service`, render. Rules are in those modules.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Response

from opencbr.core.idempotency import idempotent
from opencbr.core.routing import JSONRoute
from opencbr.core.web import RuntimeDep, SessionDep
from opencbr.iam.auth import ActorDep

from . import grants, keys, service
from .access import check_key_usable
from .alias_routes import router as alias_router
from .data_routes import router as data_router
from .errors import CLIENT_TOKEN_ERRORS, KmsValidationFailed
from .key_settings_routes import router as key_settings_router
from .models import KeyState
from .responses import (
    CreatedKey,
    DataKey,
    DataKeyCipher,
    DecryptedDataKey,
    EncryptedDataKey,
    GrantCreated,
    GrantList,
    KeyDetail,
    KeyList,
    KeyStatus,
    KeyStatusInfo,
)
from .rotation_routes import router as rotation_router
from .schemas import (
    CreateGrantBody,
    CreateKeyBody,
    DataKeyBody,
    DecryptDataKeyBody,
    EncryptDataKeyBody,
    GrantBody,
    KeyBody,
    ListGrantsBody,
    ListKeysBody,
    PageBody,
    ScheduleDeletionBody,
    grant_view,
    key_view,
    page,
    paged,
)
from .tag_routes import router as tag_router

__all__ = ["VALIDATION_ERRORS", "router", "routers"]

VALIDATION_ERRORS = {"/kms/": KmsValidationFailed}
router = APIRouter(prefix="/v1.0/{project_id}/kms", tags=["kms"], route_class=JSONRoute)


def _empty() -> Response:
    return Response(status_code=200)


@router.post("/create-key", operation_id="CreateKey", response_model=CreatedKey)
@idempotent(CLIENT_TOKEN_ERRORS)
def create_key(
    body: CreateKeyBody, actor: ActorDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    key = keys.create_key(
        session,
        runtime.root_key,
        actor,
        body.key_alias,
        body.key_description or "",
        body.key_spec,
        body.origin,
    )
    return {"key_info": {"key_id": key.id, "domain_id": key.domain_id, "region_id": key.region}}


@router.post("/describe-key", operation_id="ListKeyDetail", response_model=KeyDetail)
def describe_key(body: KeyBody, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    key = check_key_usable(session, actor, body.key_id, "describe-key", need_enabled=False)
    return {"key_info": key_view(key)}


@router.post("/list-keys", operation_id="ListKeys", response_model=KeyList)
def list_keys(
    actor: ActorDep, session: SessionDep, body: ListKeysBody | None = None
) -> dict[str, Any]:
    body = body or ListKeysBody()  # the SDK sends no body when the request has none
    states = [s for s in (body.key_state or "").split(",") if s]
    if any(s not in {k.value for k in KeyState} for s in states):
        raise KmsValidationFailed(reason="key_state must be 1-5")
    if body.key_spec not in (None, "", "AES_256", "ALL"):
        return {"keys": [], "key_details": [], **paged(0, 0, 0)}
    offset, limit = page(body)
    found, total = keys.list_keys(session, actor, states, offset, limit)
    return {
        "keys": [k.id for k in found],
        "key_details": [key_view(k) for k in found],
        **paged(total, offset, len(found)),
    }


def _status(key_id: str, state: str) -> dict[str, Any]:
    return {"key_id": key_id, "key_state": state}


@router.post("/enable-key", operation_id="EnableKey", response_model=KeyStatusInfo)
def enable_key(body: KeyBody, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    key = keys.enable_key(session, actor, body.key_id)
    return {"key_info": _status(key.id, key.state)}


@router.post("/disable-key", operation_id="DisableKey", response_model=KeyStatusInfo)
def disable_key(body: KeyBody, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    key = keys.disable_key(session, actor, body.key_id)
    return {"key_info": _status(key.id, key.state)}


@router.post("/schedule-key-deletion", operation_id="DeleteKey", response_model=KeyStatus)
def schedule_key_deletion(
    body: ScheduleDeletionBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    key = keys.schedule_deletion(session, actor, body.key_id, body.pending_days)
    return _status(key.id, key.state)


@router.post("/cancel-key-deletion", operation_id="CancelKeyDeletion", response_model=KeyStatus)
def cancel_key_deletion(body: KeyBody, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    key = keys.cancel_deletion(session, actor, body.key_id)
    return _status(key.id, key.state)


@router.post("/create-datakey", operation_id="CreateDatakey", response_model=DataKey)
def create_datakey(
    body: DataKeyBody, actor: ActorDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    check_key_usable(session, actor, body.key_id, "create-datakey")
    made = service.generate_data_key(
        session,
        runtime.root_key,
        actor,
        body.key_id,
        service.requested_length(body.key_spec, body.datakey_length),
        body.additional_authenticated_data,
    )
    return {
        "key_id": made.key_id,
        "plain_text": made.plaintext.hex(),
        "cipher_text": made.wrapped.hex(),
    }


@router.post(
    "/create-datakey-without-plaintext",
    operation_id="CreateDatakeyWithoutPlaintext",
    response_model=DataKeyCipher,
)
def create_datakey_without_plaintext(
    body: DataKeyBody, actor: ActorDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    operation = "create-datakey-without-plaintext"
    check_key_usable(session, actor, body.key_id, operation)
    made = service.generate_data_key(
        session,
        runtime.root_key,
        actor,
        body.key_id,
        service.requested_length(body.key_spec, body.datakey_length),
        body.additional_authenticated_data,
        operation=operation,
    )
    return {"key_id": made.key_id, "cipher_text": made.wrapped.hex()}


@router.post("/encrypt-datakey", operation_id="EncryptDatakey", response_model=EncryptedDataKey)
def encrypt_datakey(
    body: EncryptDataKeyBody, actor: ActorDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    wrapped, length = service.encrypt_datakey_hex(
        session,
        runtime.root_key,
        actor,
        body.key_id,
        body.plain_text,
        body.datakey_plain_length,
        body.additional_authenticated_data,
    )
    return {"key_id": body.key_id, "cipher_text": wrapped.hex(), "datakey_length": str(length)}


@router.post("/decrypt-datakey", operation_id="DecryptDatakey", response_model=DecryptedDataKey)
def decrypt_datakey(
    body: DecryptDataKeyBody, actor: ActorDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    plaintext = service.decrypt_datakey_hex(
        session,
        runtime.root_key,
        actor,
        body.key_id,
        body.cipher_text,
        body.datakey_cipher_length,
        body.additional_authenticated_data,
    )
    return {
        "data_key": plaintext.hex(),
        "datakey_length": str(len(plaintext)),
        "datakey_dgst": hashlib.sha256(plaintext).hexdigest(),
    }


@router.post("/create-grant", operation_id="CreateGrant", response_model=GrantCreated)
@idempotent(CLIENT_TOKEN_ERRORS)
def create_grant(body: CreateGrantBody, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    grant = grants.create_grant(
        session,
        actor,
        body.key_id,
        body.grantee_principal,
        body.operations,
        body.grantee_principal_type,
        body.name,
        body.retiring_principal,
    )
    return {"grant_id": grant.id}


@router.post("/list-grants", operation_id="ListGrants", response_model=GrantList)
def list_grants(body: ListGrantsBody, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    offset, limit = page(body)
    found, total = grants.list_grants(session, actor, body.key_id, offset, limit)
    return {"grants": [grant_view(g) for g in found], **paged(total, offset, len(found))}


@router.post("/revoke-grant", operation_id="CancelGrant")
def revoke_grant(body: GrantBody, actor: ActorDep, session: SessionDep) -> Response:
    grants.revoke_grant(session, actor, body.key_id, body.grant_id)
    return _empty()


@router.post("/retire-grant", operation_id="CancelSelfGrant")
def retire_grant(body: GrantBody, actor: ActorDep, session: SessionDep) -> Response:
    grants.retire_grant(session, actor, body.key_id, body.grant_id)
    return _empty()


@router.post("/list-retirable-grants", operation_id="ListRetirableGrants", response_model=GrantList)
def list_retirable_grants(body: PageBody, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    offset, limit = page(body)
    found, total = grants.list_retirable_grants(session, actor, offset, limit)
    return {"grants": [grant_view(g) for g in found], **paged(total, offset, len(found))}


routers = (router, data_router, key_settings_router, tag_router, alias_router, rotation_router)
"""Every router of the slice, for the app to add route by route."""
