"""IAM errors."""

from __future__ import annotations

from opencbr.core.errors import BadRequest, Conflict, NotFound, Unauthenticated, ValidationFailed

__all__ = [
    "AccessKeyNotFound",
    "AgencyNotFound",
    "DomainNotFound",
    "IamValidationFailed",
    "LoginFailed",
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
