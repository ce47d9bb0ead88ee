"""The one error hierarchy.

Every error a caller can see is a subclass of `AppError` with a stable code, an HTTP status, a
message template and a CLI exit code. The API and the CLI render errors once, at the edge;
services only raise. Slices define their specific errors as subclasses of the generic ones here
so that an edge which knows only the base classes still answers correctly.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AppError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "ProjectNotFound",
    "SignatureInvalid",
    "Unauthenticated",
    "UnsupportedMediaType",
    "ValidationFailed",
    "all_error_classes",
    "error_body",
]


class AppError(Exception):
    """Base of every error shown to API or CLI users."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "BackupService.9910"
    template: ClassVar[str] = "Unknown error."
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str | None = None, **params: Any) -> None:
        self.params = params
        self.message = message if message is not None else self.template.format(**params)
        super().__init__(self.message)


class BadRequest(AppError):
    status = 400
    code = "BackupService.9900"
    template = "Invalid request: {reason}"
    exit_code = 2


class ValidationFailed(BadRequest):
    """Parameter validation failed (wrong types, malformed ids, out-of-range values)."""

    template = "Parameter validation failed: {reason}"


class Unauthenticated(AppError):
    status = 401
    code = "APIGW.0301"
    template = "Incorrect IAM authentication information: {reason}"
    exit_code = 3


class SignatureInvalid(Unauthenticated):
    template = "Incorrect IAM authentication information: verify aksk signature fail"


class Forbidden(AppError):
    status = 403
    code = "BackupService.8601"
    template = "Forbidden: {reason}"
    exit_code = 3


class ProjectNotFound(Forbidden):
    """A project that does not exist and one of another domain answer alike (S14)."""

    code = "APIGW.0302"
    template = (
        "The project {project_id} does not exist or is not accessible with these credentials."
    )


class NotFound(AppError):
    status = 404
    code = "BackupService.9404"
    template = "{kind} {id} not found."
    exit_code = 4


class Conflict(AppError):
    status = 409
    code = "BackupService.9409"
    template = "Conflict: {reason}"
    exit_code = 5


class PayloadTooLarge(AppError):
    status = 413
    code = "APIGW.0413"
    template = "Request body is larger than {limit} bytes."
    exit_code = 2


class UnsupportedMediaType(AppError):
    status = 415
    code = "APIGW.0415"
    template = "Unsupported content type {content_type}."
    exit_code = 2


def error_body(error: AppError, request_id: str) -> dict[str, Any]:
    """The JSON body for an error, in the envelope its service family uses on the wire."""
    message = _encodable(error.message)
    if error.code.startswith("KMS."):
        return {"error": {"error_code": error.code, "error_msg": message}}
    if error.code.startswith("EVS."):
        return {"error": {"code": error.code, "message": message}}
    return {"error_code": error.code, "error_msg": message, "request_id": request_id}


def _encodable(text: str) -> str:
    """`text` with whatever UTF-8 cannot encode (a lone surrogate a message quotes) written as
    a `\\udXXX` escape, so that rendering the error cannot fail in turn."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def all_error_classes() -> list[type[AppError]]:
    """Every error class defined so far, for the generated error table."""
    found: list[type[AppError]] = []
    pending: list[type[AppError]] = [AppError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: (c.code, c.__name__))
