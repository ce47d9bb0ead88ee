"""The wrapped data-key format (envelope encryption under a customer master key).

A wrapped data key is::

    version (1 byte, 0x01) | nonce (12 bytes) | AES-256-GCM(master, nonce, data key) | tag (16)

with associated data ``b"opencbr.kms.datakey.v1\\0" + key_id + b"\\0" + caller_aad``, so a
wrapped key only opens under the master key whose id it was made for (and with the same
additional authenticated data, if the caller gave one). The wire's `cipher_text` is the hex of
these bytes; a 32-byte data key wraps to 61 bytes. This module works on bytes only: no
tenants, no database.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["VERSION", "WrapFailed", "new_master_key", "unwrap", "wrap", "wrapped_length"]

VERSION = b"\x01"
_NONCE = 12
_TAG = 16
_LABEL = b"opencbr.kms.datakey.v1\x00"


class WrapFailed(Exception):
    """A wrapped data key failed authentication (other key, other AAD, altered bytes)."""


def new_master_key() -> bytes:
    return AESGCM.generate_key(256)


def _associated_data(key_id: str, aad: str) -> bytes:
    return _LABEL + key_id.encode() + b"\x00" + aad.encode()


def wrap(master: bytes, key_id: str, data_key: bytes, aad: str = "") -> bytes:
    nonce = os.urandom(_NONCE)
    body = AESGCM(master).encrypt(nonce, data_key, _associated_data(key_id, aad))
    return VERSION + nonce + body


def unwrap(master: bytes, key_id: str, wrapped: bytes, aad: str = "") -> bytes:
    if len(wrapped) < 1 + _NONCE + _TAG or wrapped[:1] != VERSION:
        raise WrapFailed("not a wrapped data key of this format")
    nonce, body = wrapped[1 : 1 + _NONCE], wrapped[1 + _NONCE :]
    try:
        return AESGCM(master).decrypt(nonce, body, _associated_data(key_id, aad))
    except InvalidTag as exc:
        raise WrapFailed("wrapped data key failed authentication") from exc


def wrapped_length(data_key_length: int) -> int:
    return 1 + _NONCE + data_key_length + _TAG
