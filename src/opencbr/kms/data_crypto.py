"""Small data encrypted directly under a customer master key (`encrypt-data` /
`decrypt-data`): at most 4096 bytes, as the vendor allows.

The cipher text (base64 on the wire) is::

    version (1 byte, 0x01) | key id (36 ASCII bytes) | nonce (12) | AES-256-GCM body | tag (16)

with associated data ``b"opencbr.kms.data.v1\\0" + key_id + b"\\0" + caller_aad``: it names
its key, so `decrypt-data` needs no key id, and it opens only under that key (and with the
same additional authenticated data). Who may use the key is `access.check_key_usable`'s to
say (operations `encrypt-data` / `decrypt-data`).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.orm import Session

from opencbr.core.context import Actor
from opencbr.core.ids import is_uuid
from opencbr.core.secrets import RootKey

from . import rotation
from .access import check_key_usable, master_key
from .errors import CipherTextInvalid, KmsValidationFailed, MissingParameter

__all__ = ["MAX_PLAINTEXT", "Decrypted", "decrypt_data", "encrypt_data"]

MAX_PLAINTEXT = 4096
MAX_AAD = 128
_VERSION = b"\x01"
_KEY_ID = 36
_NONCE = 12
_TAG = 16
_LABEL = b"opencbr.kms.data.v1\x00"


def _aad(key_id: str, aad: str | None) -> bytes:
    extra = (aad or "").encode()
    if len(extra) > MAX_AAD:
        raise KmsValidationFailed(
            reason=f"additional_authenticated_data is at most {MAX_AAD} bytes"
        )
    return _LABEL + key_id.encode() + b"\x00" + extra


def _check_algorithm(algorithm: str | None) -> None:
    if algorithm not in (None, "", "SYMMETRIC_DEFAULT"):
        raise KmsValidationFailed(reason="encryption_algorithm must be SYMMETRIC_DEFAULT")


def encrypt_data(
    session: Session,
    root_key: RootKey,
    actor: Actor,
    key_id: str | None,
    plain_text: str | None,
    aad: str | None = None,
    algorithm: str | None = None,
) -> tuple[str, str]:
    """(key id, base64 cipher text) of `plain_text` under the key."""
    _check_algorithm(algorithm)
    if not plain_text:
        raise MissingParameter(name="plain_text")
    data = plain_text.encode()
    if len(data) > MAX_PLAINTEXT:
        raise KmsValidationFailed(reason=f"plain_text is at most {MAX_PLAINTEXT} bytes")
    key = check_key_usable(session, actor, key_id, "encrypt-data")
    nonce = os.urandom(_NONCE)
    body = AESGCM(master_key(root_key, key)).encrypt(nonce, data, _aad(key.id, aad))
    blob = _VERSION + key.id.encode() + nonce + body
    return key.id, base64.b64encode(blob).decode()


@dataclass(frozen=True)
class Decrypted:
    key_id: str
    plaintext: bytes


def decrypt_data(
    session: Session,
    root_key: RootKey,
    actor: Actor,
    cipher_text: str | None,
    key_id: str | None = None,
    aad: str | None = None,
    algorithm: str | None = None,
) -> Decrypted:
    """The data inside `cipher_text`; the key it names must be usable by the caller and, when
    `key_id` is given, be that key (KMS.0213 otherwise, as for altered bytes)."""
    _check_algorithm(algorithm)
    if not cipher_text:
        raise MissingParameter(name="cipher_text")
    try:
        blob = base64.b64decode(cipher_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KmsValidationFailed(reason="cipher_text must be base64") from exc
    named = blob[1 : 1 + _KEY_ID].decode(errors="replace")
    if len(blob) < 1 + _KEY_ID + _NONCE + _TAG or blob[:1] != _VERSION or not is_uuid(named):
        raise KmsValidationFailed(reason="cipher_text is not a cipher text of encrypt-data")
    if key_id and key_id != named:
        raise CipherTextInvalid(key_id=key_id)
    key = check_key_usable(session, actor, named, "decrypt-data")
    nonce, body = blob[1 + _KEY_ID : 1 + _KEY_ID + _NONCE], blob[1 + _KEY_ID + _NONCE :]
    associated = _aad(key.id, aad)
    for material in rotation.materials(session, root_key, key):  # current, then retired
        try:
            return Decrypted(key.id, AESGCM(material).decrypt(nonce, body, associated))
        except InvalidTag:
            continue
    raise CipherTextInvalid(key_id=key.id)
