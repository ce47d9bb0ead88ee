"""The OpenAPI document at `/openapi.json`: FastAPI's, with the service's own ways of signing
and of refusing. Requests are signed (SDK-HMAC-SHA256) or carry a token, which FastAPI cannot
see since the check is not one of its security dependencies; and every refusal is one of the
service's error bodies (`docs/errors.md`), never FastAPI's `HTTPValidationError`: bad input
answers 400 in the error family of the service called."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["install_openapi"]

SECURITY_SCHEMES: dict[str, Any] = {
    "SdkHmacSha256": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": (
            "`SDK-HMAC-SHA256 Access=AK, SignedHeaders=..., Signature=...`, as the vendor SDK "
            "signs: over the method, the canonical path (with a trailing slash), the sorted "
            "query, the signed headers (`Host` and `X-Sdk-Date`, within 15 minutes of the "
            "server's clock) and the SHA-256 of the body. The project is the path's "
            "`project_id` (or `X-Project-Id`)."
        ),
    },
    "AuthToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Auth-Token",
        "description": "A token from `POST /v3/auth/tokens` (its `X-Subject-Token` header).",
    },
    "OperatorToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The operator's API: the `OPENCBR_ADMIN_TOKEN` setting.",
    },
}
TENANT_SECURITY: list[dict[str, list[str]]] = [{"SdkHmacSha256": []}, {"AuthToken": []}]

_FLAT = {
    "type": "object",
    "title": "ServiceError",
    "description": "The error body of CBR, IAM and the gateway (`BackupService.NNNN`, "
    "`APIGW.NNNN`, `IAM.NNNN`).",
    "properties": {
        "error_code": {"type": "string", "examples": ["BackupService.6705"]},
        "error_msg": {"type": "string"},
        "request_id": {"type": "string"},
    },
    "required": ["error_code", "error_msg", "request_id"],
    "additionalProperties": False,
}
_KMS = {
    "type": "object",
    "title": "KmsError",
    "description": "The error body of KMS (`KMS.NNNN`).",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "error_code": {"type": "string", "examples": ["KMS.0205"]},
                "error_msg": {"type": "string"},
            },
            "required": ["error_code", "error_msg"],
            "additionalProperties": False,
        }
    },
    "required": ["error"],
    "additionalProperties": False,
}
_EVS = {
    "type": "object",
    "title": "EvsError",
    "description": "The error body of EVS (`EVS.NNNN`).",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "examples": ["EVS.2024"]},
                "message": {"type": "string"},
            },
            "required": ["code", "message"],
            "additionalProperties": False,
        }
    },
    "required": ["error"],
    "additionalProperties": False,
}
ERROR_SCHEMAS = {"ServiceError": _FLAT, "KmsError": _KMS, "EvsError": _EVS}


# An error's body follows its code's family (`core.errors.error_body`), and a route answers
# the errors of every service it calls (a restore, the NBD checks of EVS; any route, the
# gateway's signature check), so each operation's refusals are any of the three forms.
ERROR_BODY = {
    "title": "ErrorBody",
    "description": "`KMS.NNNN` codes come in KmsError, `EVS.NNNN` in EvsError, all others "
    "in ServiceError.",
    "anyOf": [{"$ref": f"#/components/schemas/{name}"} for name in ERROR_SCHEMAS],
}


def _errors(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's; bad input answers 400 with the service's body
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    responses["400"] = {"description": "Bad input (the service's error body)", "content": content}
    responses["default"] = {
        "description": "Any other refusal or failure, with its error code (docs/errors.md)",
        "content": content,
    }


def build_document(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = document.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(ERROR_SCHEMAS)
    schemas["ErrorBody"] = ERROR_BODY
    components["securitySchemes"] = SECURITY_SCHEMES
    document["security"] = TENANT_SECURITY
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            _errors(operation)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve `build_document` (built once, at the first request for it)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
