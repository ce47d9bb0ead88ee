"""KMS `encrypt-data` / `decrypt-data` routes (rules in `data_crypto`)."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter

from opencbr.core.routing import JSONRoute
from opencbr.core.web import RuntimeDep, SessionDep
from opencbr.iam.auth import ActorDep

from . import data_crypto
from .responses import DecryptedData, EncryptedData
from .schemas import KeyBody

__all__ = ["router"]

router = APIRouter(prefix="/v1.0/{project_id}/kms", tags=["kms"], route_class=JSONRoute)


class EncryptDataBody(KeyBody):
    plain_text: str | None = None
    encryption_algorithm: str | None = None
    additional_authenticated_data: str | None = None


class DecryptDataBody(KeyBody):
    cipher_text: str | None = None
    encryption_algorithm: str | None = None
    additional_authenticated_data: str | None = None


@router.post("/encrypt-data", operation_id="EncryptData", response_model=EncryptedData)
def encrypt_data(
    body: EncryptDataBody, actor: ActorDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    key_id, cipher = data_crypto.encrypt_data(
        session,
        runtime.root_key,
        actor,
        body.key_id,
        body.plain_text,
        body.additional_authenticated_data,
        body.encryption_algorithm,
    )
    return {"key_id": key_id, "cipher_text": cipher}


@router.post("/decrypt-data", operation_id="DecryptData", response_model=DecryptedData)
def decrypt_data(
    body: DecryptDataBody, actor: ActorDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    found = data_crypto.decrypt_data(
        session,
        runtime.root_key,
        actor,
        body.cipher_text,
        body.key_id,
        body.additional_authenticated_data,
        body.encryption_algorithm,
    )
    return {
        "key_id": found.key_id,
        "plain_text": found.plaintext.decode(errors="replace"),
        "plain_text_base64": base64.b64encode(found.plaintext).decode(),
    }
