"""The server root key: seals secrets at rest (access-key secrets, KMS key material).

All processes of one deployment must use the same root key: either `OPENCBR_ROOT_KEY`
(base64 of 32 bytes) or the key file `root.key` in the shared data directory (mode 0600).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .files import PRIVATE_FILE, private_directory

__all__ = ["RootKey", "SealedDataCorrupt"]

_VERSION = b"\x01"
_NONCE = 12


class SealedDataCorrupt(Exception):
    """A sealed value failed authentication: wrong root key or tampered data."""


class RootKey:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the root key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def load(cls, configured: str | None, data_dir: Path) -> RootKey:
        """The configured key, else the data directory's key file (created on first start)."""
        if configured:
            return cls(base64.b64decode(configured))
        path = data_dir / "root.key"
        if not path.exists():
            private_directory(data_dir)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
            with os.fdopen(fd, "wb") as handle:
                handle.write(base64.b64encode(AESGCM.generate_key(256)))
        return cls(base64.b64decode(path.read_bytes()))

    def seal(self, plaintext: bytes, purpose: str) -> bytes:
        """Encrypt and authenticate; `purpose` binds the value to its use (AEAD associated data)."""
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, purpose.encode())

    def unseal(self, sealed: bytes, purpose: str) -> bytes:
        if sealed[:1] != _VERSION:
            raise SealedDataCorrupt("unknown sealed-value version")
        nonce, body = sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :]
        try:
            return self._aead.decrypt(nonce, body, purpose.encode())
        except InvalidTag as exc:
            raise SealedDataCorrupt("sealed value failed authentication") from exc
