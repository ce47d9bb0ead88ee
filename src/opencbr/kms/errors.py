"""The KMS error catalogue (`KMS.NNNN`; the wire nests them as `{"error": {...}}`).

Codes from the reference's KMS table where it gives one; the ones marked *inferred* are this
service's choice where the reference is silent.
"""

from __future__ import annotations

from opencbr.core.errors import BadRequest, Conflict, Forbidden, NotFound, ValidationFailed
from opencbr.core.idempotency import TokenErrors

__all__ = [
    "CLIENT_TOKEN_ERRORS",
    "AliasNotFound",
    "AliasTaken",
    "CipherTextInvalid",
    "ClientTokenReused",
    "DefaultKeyRefused",
    "GrantCreateFailed",
    "GrantNotFound",
    "GrantOperationsInvalid",
    "GrantRefused",
    "InvalidGrantId",
    "InvalidKeyId",
    "KeyAccessDenied",
    "KeyDisabled",
    "KeyNotFound",
    "KeyPendingDeletion",
    "KeyStateInvalid",
    "KmsValidationFailed",
    "MissingParameter",
    "TagNotFound",
    "TooManyGrants",
]


class MissingParameter(BadRequest):
    code = "KMS.0204"
    template = "Missing parameter: {name}."


class InvalidKeyId(BadRequest):
    code = "KMS.0205"
    template = "Invalid key_id {key_id!r}: expected a 36-character lower-case UUID."


class KmsValidationFailed(ValidationFailed):
    """Any other malformed or out-of-range parameter (inferred code)."""

    code = "KMS.0206"
    template = "Invalid parameter: {reason}"


class KeyNotFound(NotFound):
    code = "KMS.0207"
    template = "KMS key {key_id} not found in this region."


class KeyStateInvalid(BadRequest):
    """A lifecycle call the key's current state does not allow (inferred code)."""

    code = "KMS.0208"
    template = "KMS key {key_id} is {state}; {operation} is not allowed in that state."


class KeyDisabled(BadRequest):
    code = "KMS.0209"
    template = "KMS key {key_id} is disabled; {operation} is refused."


class KeyPendingDeletion(BadRequest):
    code = "KMS.0210"
    template = "KMS key {key_id} is pending deletion; {operation} is refused."


class DefaultKeyRefused(BadRequest):
    code = "KMS.0211"
    template = "KMS key {key_id} is a service default key; {operation} is not allowed on it."


class TagNotFound(NotFound):
    """Inferred code: DeleteTag of a tag the key does not have."""

    code = "KMS.0404"
    template = "KMS key {key_id} has no tag {tag}."


class AliasNotFound(NotFound):
    """Inferred code: an alias the caller's project does not have (or not of that key)."""

    code = "KMS.0405"
    template = "Alias {alias} not found."


class AliasTaken(BadRequest):
    """Inferred code: aliases are unique within a project."""

    code = "KMS.0212"
    template = "The key alias {alias!r} is already used in this project."


class CipherTextInvalid(BadRequest):
    """Inferred code: the data-key cipher text fails authentication under this key."""

    code = "KMS.0213"
    template = "The cipher text is not a data key of KMS key {key_id}, or it was altered."


class KeyAccessDenied(Forbidden):
    """Someone else's key: no grant covers the operation (S10 names key and grant)."""

    code = "KMS.0306"
    template = "KMS key {key_id} {whose}: no grant gives {grantee} the {operation} operation."


class GrantRefused(Forbidden):
    code = "KMS.0307"
    template = "Not allowed to {operation} grant {grant_id} of KMS key {key_id}: {reason}."


class GrantOperationsInvalid(BadRequest):
    code = "KMS.2401"
    template = "Invalid grant operations: {reason}."


class GrantCreateFailed(BadRequest):
    code = "KMS.2403"
    template = "The grant could not be created: {reason}."


class TooManyGrants(BadRequest):
    code = "KMS.2404"
    template = "KMS key {key_id} already has the maximum of {limit} grants."


class InvalidGrantId(BadRequest):
    code = "KMS.2501"
    template = "Invalid grant_id {grant_id!r}: expected 64 lower-case hex characters."


class GrantNotFound(BadRequest):
    code = "KMS.2502"
    template = "Grant {grant_id} does not belong to KMS key {key_id}."


class ClientTokenReused(Conflict):
    """*inferred*"""

    code = "KMS.0214"
    template = (
        "Client token {token} already named another request of this project in the last 24 "
        "hours; use a new token for a new request."
    )


CLIENT_TOKEN_ERRORS = TokenErrors(invalid=KmsValidationFailed, reused=ClientTokenReused)
