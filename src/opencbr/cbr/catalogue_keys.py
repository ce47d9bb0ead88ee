"""The keys of the catalogue the store carries (DESIGN §6: recovery).

Every catalogue record is sealed (AES-256-GCM, its place in the store as associated data) by
a catalogue key: 32 random bytes, kept in the store itself, twice sealed::

    catalogue/keys/root-<id>        by the server root key (purpose cbr.catalogue-key:<id>)
    catalogue/keys/recovery-<id>    for the recovery key, when one was exported
    catalogue/keys/recovery-public  the recovery key's public half (X25519)

The recovery key is an X25519 key pair whose private half the operator keeps offline: any
process seals a new catalogue key for it with the public half alone (ephemeral X25519, HKDF,
AES-GCM), and only the offline half opens it. So either the root key or the recovery key
alone reads the whole catalogue.

Processes starting together may each create a catalogue key (the store has no put-if-absent);
that is harmless: records name the key that sealed them, and readers open every key.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from opencbr.chunkstore import Catalogue, ChunkStoreError
from opencbr.core.secrets import RootKey, SealedDataCorrupt

from .errors import CatalogueUnreadable

__all__ = ["CatalogueKeys", "RecoveryKey"]

KEYS = "keys"
_RECORD_VERSION = b"\x01"
_ID = 16
_NONCE = 12
_PUBLIC = "recovery-public"


def _purpose(key_id: str) -> str:
    return f"cbr.catalogue-key:{key_id}"


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _kek(shared: bytes, key_id: str) -> AESGCM:
    info = b"opencbr catalogue recovery " + key_id.encode()
    return AESGCM(HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(shared))


class RecoveryKey:
    """The offline half of the recovery key (a file of base64, like `root.key`)."""

    def __init__(self, private: X25519PrivateKey) -> None:
        self.private = private

    @classmethod
    def generate(cls) -> RecoveryKey:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> RecoveryKey:
        raw = base64.b64decode(path.read_bytes().strip())
        return cls(X25519PrivateKey.from_private_bytes(raw))

    def save(self, path: Path) -> None:
        raw = self.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64encode(raw) + b"\n")

    @property
    def public(self) -> bytes:
        return _raw(self.private.public_key())

    def open(self, sealed: bytes, key_id: str) -> bytes:
        ephemeral, nonce, body = sealed[1:33], sealed[33:45], sealed[45:]
        shared = self.private.exchange(X25519PublicKey.from_public_bytes(ephemeral))
        try:
            return _kek(shared, key_id).decrypt(nonce, body, key_id.encode())
        except InvalidTag:
            raise CatalogueUnreadable(
                reason=f"the recovery key does not open key {key_id}"
            ) from None


def seal_for_recovery(public: bytes, key: bytes, key_id: str) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(public))
    nonce = os.urandom(_NONCE)
    body = _kek(shared, key_id).encrypt(nonce, key, key_id.encode())
    return b"\x01" + _raw(ephemeral.public_key()) + nonce + body


class CatalogueKeys:
    """The catalogue keys one can open; new records are sealed by `current`."""

    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        self.keys, self.current = keys, current

    @classmethod
    def for_writing(cls, catalogue: Catalogue, root_key: RootKey) -> CatalogueKeys:
        """Every key the root key opens (the first is current), creating one if none does."""
        keys = cls.opened_by(catalogue, root_key)
        if not keys:
            key_id, key = os.urandom(_ID).hex(), os.urandom(32)
            public = catalogue.get(KEYS, _PUBLIC)
            if public is not None:  # sealed for the recovery key before use, never after
                catalogue.put(KEYS, f"recovery-{key_id}", seal_for_recovery(public, key, key_id))
            catalogue.put(KEYS, f"root-{key_id}", root_key.seal(key, _purpose(key_id)))
            keys = {key_id: key}
        return cls(keys, min(keys))

    @classmethod
    def for_reading(
        cls, catalogue: Catalogue, root_key: RootKey | None, recovery: RecoveryKey | None
    ) -> CatalogueKeys:
        """Every key the root key or the recovery key opens; `CatalogueUnreadable` if none."""
        keys = cls.opened_by(catalogue, root_key) if root_key else {}
        if recovery is not None:
            for name in catalogue.names(KEYS):
                key_id = name.removeprefix("recovery-")
                if name.startswith("recovery-") and name != _PUBLIC and key_id not in keys:
                    try:
                        keys[key_id] = recovery.open(catalogue.get(KEYS, name) or b"", key_id)
                    except (ChunkStoreError, CatalogueUnreadable, ValueError):
                        continue  # damaged or stale: another copy of the key may open
        if not keys:
            raise CatalogueUnreadable(reason="no catalogue key opens with the keys given")
        return cls(keys, min(keys))

    @staticmethod
    def opened_by(catalogue: Catalogue, root_key: RootKey) -> dict[str, bytes]:
        keys = {}
        for name in catalogue.names(KEYS):
            if not name.startswith("root-"):
                continue
            key_id = name.removeprefix("root-")
            try:
                keys[key_id] = root_key.unseal(catalogue.get(KEYS, name) or b"", _purpose(key_id))
            except (SealedDataCorrupt, ChunkStoreError):
                continue  # sealed by another root key (one rotated away), or damaged
        return keys

    def reseal(self, catalogue: Catalogue, root_key: RootKey) -> None:
        """Seal every key by `root_key` (after a recovery by the recovery key, a rotation)."""
        for key_id, key in self.keys.items():
            catalogue.put(KEYS, f"root-{key_id}", root_key.seal(key, _purpose(key_id)))

    def add_recovery(self, catalogue: Catalogue, recovery_public: bytes) -> None:
        """Seal every key for a (new) recovery key; records stay as they are."""
        catalogue.put(KEYS, _PUBLIC, recovery_public)
        for key_id, key in self.keys.items():
            sealed = seal_for_recovery(recovery_public, key, key_id)
            catalogue.put(KEYS, f"recovery-{key_id}", sealed)

    def seal(self, kind: str, name: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        key_id = bytes.fromhex(self.current)
        aad = f"{kind}/{name}".encode() + key_id
        body = AESGCM(self.keys[self.current]).encrypt(nonce, plaintext, aad)
        return _RECORD_VERSION + key_id + nonce + body

    def open(self, kind: str, name: str, sealed: bytes) -> bytes:
        """The plaintext; `CatalogueUnreadable` when no key of ours sealed it or it was altered."""
        if sealed[:1] != _RECORD_VERSION:
            raise CatalogueUnreadable(reason=f"{kind}/{name}: unknown record version")
        key_id = sealed[1 : 1 + _ID]
        nonce, body = sealed[1 + _ID : 1 + _ID + _NONCE], sealed[1 + _ID + _NONCE :]
        key = self.keys.get(key_id.hex())
        if key is None:
            raise CatalogueUnreadable(reason=f"{kind}/{name}: sealed by an unknown key")
        try:
            return AESGCM(key).decrypt(nonce, body, f"{kind}/{name}".encode() + key_id)
        except InvalidTag:
            raise CatalogueUnreadable(reason=f"{kind}/{name}: failed authentication") from None
