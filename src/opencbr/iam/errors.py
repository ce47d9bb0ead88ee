"""IAM errors."""

from __future__ import annotations

from typing import ClassVar

from opencbr.core.errors import (
    AppError,
    BadRequest,
    Conflict,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)

__all__ = [
    "AccessKeyNotFound",
    "AgencyNotFound",
    "DomainNotFound",
    "IamValidationFailed",
    "LoginBusy",
    "LoginFailed",
    "LoginThrottled",
    "NameTaken",
    "UnknownRegion",
    "UserNotFound",
]


class NameTaken(Conflict):
    code = "IAM.0010"
    template = "The {kind} name {name!r} is already in use."


class UnknownRegion(BadRequest):
    code = "IAM.0012"
    template = "Unknown region {region!r}; this deployment serves {regions}."


class DomainNotFound(NotFound):
    code = "IAM.0004"
    template = "Domain {id} not found."


class UserNotFound(NotFound):
    code = "IAM.0005"
    template = "User {id} not found."


class AccessKeyNotFound(NotFound):
    code = "IAM.0006"
    template = "Access key {id} not found."


class LoginFailed(Unauthenticated):
    code = "IAM.0101"
    template = "The user name or password is wrong."


class AgencyNotFound(NotFound):
    code = "IAM.0007"
    template = "Agency {id} not found."


class IamValidationFailed(ValidationFailed):
    """Bad input to an IAM call (a token request without its identity, say), in IAM's family."""

    code = "IAM.0011"
    template = "Request parameter invalid: {reason}"


class LoginThrottled(AppError):
    """A sign-in refused before its password was checked, because the user name is locked
    (`iam.throttle`); `retry_after` is in seconds (the edge sends it as `Retry-After`)."""

    status: ClassVar[int] = 429
    code = "IAM.0102"
    template = "Too many failed sign-ins for this user name; try again in {retry_after} s."
    exit_code: ClassVar[int] = 5  # as a conflict: the same call may work later

    @property
    def retry_after(self) -> int:
        return int(self.params["retry_after"])


class LoginBusy(LoginThrottled):
    """Every password-check slot of the process is taken (`iam.throttle.LoginGate`)."""

    code = "IAM.0103"
    template = "Too many sign-ins are being checked right now; try again in {retry_after} s."
