"""The service's own error body, as each service family sends it on the wire."""

from __future__ import annotations

from typing import Any, Protocol

FAMILIES = ("BackupService.", "EVS.", "KMS.", "IAM.", "APIGW.")


class _Response(Protocol):
    def json(self) -> Any: ...


def service_error(response: _Response) -> tuple[str, str]:
    """The error code and message of a refusal, checked to be in its family's envelope:
    `{"error_code", "error_msg", ...}` (BackupService, IAM, APIGW), `{"error": {"error_code",
    "error_msg"}}` (KMS) or `{"error": {"code", "message"}}` (EVS)."""
    body: Any = response.json()
    assert isinstance(body, dict), body
    if "error_code" in body:
        code, message = body["error_code"], body["error_msg"]
    else:
        inner = body["error"]
        kms = "error_code" in inner
        code = inner["error_code"] if kms else inner["code"]
        message = inner["error_msg"] if kms else inner["message"]
        assert code.startswith("KMS." if kms else "EVS."), body
    assert isinstance(code, str), body
    assert isinstance(message, str), body
    assert code.startswith(FAMILIES), body
    return code, message
