"""KMS for other slices — the one interface the disk service and backups use — and the
data-key operations of the wire API.

Interface (every function takes the caller's `Actor`: domain, user, project and region; a job
acting for a project passes `Actor(domain_id, "", project_id, region)`)::

    check_key_usable(session, actor, key_id, operation) -> Key
    default_disk_key(session, root_key, actor) -> Key
    generate_data_key(session, root_key, actor, key_id) -> DataKey(key_id, plaintext, wrapped)
    wrap_data_key(session, root_key, actor, key_id, plaintext) -> wrapped
    unwrap_data_key(session, root_key, actor, key_id, wrapped) -> plaintext

`check_key_usable` is where region, ownership, grants and key state are checked (rules in
`opencbr.kms.access`); the others call it first. Failures are `KMS.*` errors that name the key
and what is missing, e.g. KMS.0306 "KMS key <id> of another account: no grant gives account
<domain> the decrypt-datakey operation" for a grantee lacking that operation, KMS.0209 disabled,
KMS.0210 pending deletion, KMS.0207 unknown in this region or another account's key the caller
holds no grant on (the two answer alike). They change nothing.

Keys whose deletion date has passed are destroyed by `purge_tick`, a worker hook (see
`keys.purge_due_keys`).

`wrapped` is the `envelope` format: its hex is exactly the wire's `cipher_text`, so a data key
made through the SDK can be opened here and the other way round.

Grantee use on the wire: a grantee calls the KMS API **in its own project** (same region as the
key), passing the owner's `key_id`, e.g. `POST /v1.0/{grantee_project}/kms/decrypt-datakey`
with `{"key_id": <owner's key>, ...}`. The key is looked up by id within the caller's region;
a grant to the caller's domain (or user) with that operation lets the call through.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from opencbr.core.context import Actor, Runtime
from opencbr.core.jobs import throttled
from opencbr.core.numbers import whole_number
from opencbr.core.secrets import RootKey

from . import envelope, rotation
from .access import check_key_usable, master_key
from .errors import CipherTextInvalid, KmsValidationFailed, MissingParameter
from .keys import DEFAULT_DISK_ALIAS, default_key, purge_due_keys
from .models import Key

__all__ = [
    "DataKey",
    "check_key_usable",
    "decrypt_datakey_hex",
    "default_disk_key",
    "encrypt_datakey_hex",
    "generate_data_key",
    "purge_tick",
    "requested_length",
    "unwrap_data_key",
    "wrap_data_key",
]

DATA_KEY_BYTES = 32
_MAX_AAD = 128
PURGE_EVERY = timedelta(minutes=5)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataKey:
    """A fresh data key: use `plaintext`, store only `wrapped` (and `key_id`)."""

    key_id: str
    plaintext: bytes
    wrapped: bytes


def purge_tick(runtime: Runtime, every: timedelta = PURGE_EVERY) -> Callable[[], None]:
    """A `WorkerPool.tick` hook that destroys the keys whose deletion date has passed."""

    def purge() -> None:
        with runtime.database.unit_of_work() as session:
            purged = purge_due_keys(session)
        for key_id in purged:
            log.info("KMS key %s destroyed: its deletion date has passed", key_id)

    return throttled(every, purge, "KMS key purge")


def default_disk_key(session: Session, root_key: RootKey, actor: Actor) -> Key:
    """The project's `evs/default` key (default_key_flag "1"), created on first need."""
    return default_key(session, root_key, actor, DEFAULT_DISK_ALIAS)


def _check_aad(aad: str | None) -> str:
    if aad and len(aad.encode()) > _MAX_AAD:
        raise KmsValidationFailed(reason="additional_authenticated_data is at most 128 bytes")
    return aad or ""


def generate_data_key(
    session: Session,
    root_key: RootKey,
    actor: Actor,
    key_id: str | None,
    length: int = DATA_KEY_BYTES,
    aad: str | None = None,
    operation: str = "create-datakey",
) -> DataKey:
    """A random data key of `length` bytes and its wrapping under the master key.

    `operation` is `create-datakey` or `create-datakey-without-plaintext` (what a grantee
    needs; the plaintext is returned either way, the wire drops it for the latter).
    """
    key = check_key_usable(session, actor, key_id, operation)
    plaintext = os.urandom(length)
    wrapped = envelope.wrap(master_key(root_key, key), key.id, plaintext, _check_aad(aad))
    return DataKey(key.id, plaintext, wrapped)


def wrap_data_key(
    session: Session,
    root_key: RootKey,
    actor: Actor,
    key_id: str | None,
    plaintext: bytes,
    aad: str | None = None,
) -> bytes:
    """Wrap a data key the caller already has (`encrypt-datakey`)."""
    key = check_key_usable(session, actor, key_id, "encrypt-datakey")
    return envelope.wrap(master_key(root_key, key), key.id, plaintext, _check_aad(aad))


def unwrap_data_key(
    session: Session,
    root_key: RootKey,
    actor: Actor,
    key_id: str | None,
    wrapped: bytes,
    aad: str | None = None,
) -> bytes:
    """The data key inside `wrapped` (`decrypt-datakey`); KMS.0213 if it is not this key's."""
    key = check_key_usable(session, actor, key_id, "decrypt-datakey")
    aad = _check_aad(aad)
    try:
        return rotation.unwrap_with_any(session, root_key, key, wrapped, aad)
    except envelope.WrapFailed as exc:
        raise CipherTextInvalid(key_id=key.id) from exc


# --- the wire's spelling of the same operations --------------------------------------------


def requested_length(key_spec: str | None, datakey_length: str | int | None) -> int:
    """Data-key bytes from `datakey_length` (bits, 8-8192, multiple of 8) or `key_spec`."""
    if datakey_length not in (None, ""):
        bits = whole_number(datakey_length)
        if bits is None or not 8 <= bits <= 8192 or bits % 8:
            raise KmsValidationFailed(reason="datakey_length must be 8-8192 bits, a multiple of 8")
        return bits // 8
    specs = {None: 32, "": 32, "AES_256": 32, "AES_128": 16}
    if key_spec not in specs:
        raise KmsValidationFailed(reason="key_spec must be AES_256 or AES_128")
    return specs[key_spec]


def _hex(name: str, value: str | None) -> bytes:
    if not value:
        raise MissingParameter(name=name)
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise KmsValidationFailed(reason=f"{name} must be a hex string") from exc


def _length(name: str, value: str | int | None) -> int:
    if value in (None, ""):
        raise MissingParameter(name=name)
    number = whole_number(value)
    if number is None or not 1 <= number <= 1024:
        raise KmsValidationFailed(reason=f"{name} must be 1-1024")
    return number


_DIGEST = 32  # a SHA-256 follows the data key in `plain_text`


def _split_with_digest(data: bytes, length: int) -> bytes:
    """`plain_text` is the data key followed by its SHA-256 (the digest is optional here).

    `datakey_plain_length` is read as either the key's length or the whole text's (the SDK
    documents "64" for a 32-byte key and its digest); a matching digest decides."""
    if len(data) == length + _DIGEST or (len(data) == length and length > _DIGEST):
        key, digest = data[:-_DIGEST], data[-_DIGEST:]
        if hashlib.sha256(key).digest() == digest:
            return key
    if len(data) == length:
        return data
    raise KmsValidationFailed(
        reason="plain_text must be the data key followed by its SHA-256, "
        "datakey_plain_length the length of either"
    )


def encrypt_datakey_hex(
    session: Session,
    root_key: RootKey,
    actor: Actor,
    key_id: str | None,
    plain_text: str | None,
    plain_length: str | int | None,
    aad: str | None = None,
) -> tuple[bytes, int]:
    """encrypt-datakey: the wrapped data key and the data key's length in bytes."""
    check_key_usable(session, actor, key_id, "encrypt-datakey")
    length = _length("datakey_plain_length", plain_length)
    data_key = _split_with_digest(_hex("plain_text", plain_text), length)
    wrapped = wrap_data_key(session, root_key, actor, key_id, data_key, aad)
    return wrapped, length


def decrypt_datakey_hex(
    session: Session,
    root_key: RootKey,
    actor: Actor,
    key_id: str | None,
    cipher_text: str | None,
    cipher_length: str | int | None,
    aad: str | None = None,
) -> bytes:
    """decrypt-datakey: the data key; `datakey_cipher_length` is its length in bytes, or that
    plus its digest's (the SDK's "64" for a 32-byte key)."""
    check_key_usable(session, actor, key_id, "decrypt-datakey")
    length = _length("datakey_cipher_length", cipher_length)
    plaintext = unwrap_data_key(
        session, root_key, actor, key_id, _hex("cipher_text", cipher_text), aad
    )
    if length not in (len(plaintext), len(plaintext) + _DIGEST):
        raise KmsValidationFailed(
            reason=f"datakey_cipher_length {length} does not match the data key ({len(plaintext)})"
        )
    return plaintext
