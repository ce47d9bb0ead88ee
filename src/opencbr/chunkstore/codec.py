"""Scopes and the blob envelope: how one block becomes one stored blob, and back.

A blob is ``header || payload``::

    u8  version      BLOB_VERSION (1)
    u8  flags        1 = zstd-compressed, 2 = AES-256-GCM encrypted
    u32 raw length   length of the block's plaintext (little endian)
    [12 bytes nonce] only when encrypted
    payload          zstd frame or raw bytes; when encrypted, their AES-GCM ciphertext + tag

The AES-GCM associated data is ``b"OCBRBLOB" || version || flags || raw length || block id``:
the header is authenticated, and a blob cannot be moved to another id (or have its flags
flipped) without failing authentication. The block id is a keyed BLAKE3 of the plaintext under
the scope's id key, so an unencrypted blob is authenticated too: ``decode`` recomputes the id.

Compression is skipped where it does not pay: a block stays raw when its zstd frame would be
at least `RAW_THRESHOLD` of its size (random data), which also makes restore of such blocks a
copy instead of a decompression.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import blake3
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import CorruptBlock

__all__ = ["BLOB_VERSION", "DEFAULT_ZSTD_LEVEL", "BlockCodec", "Scope", "key_check"]

BLOB_VERSION = 1
FLAG_ZSTD = 1
FLAG_AESGCM = 2
DEFAULT_ZSTD_LEVEL = 1
RAW_THRESHOLD = 0.97
ID_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
_HEAD = struct.Struct("<BBI")
_AAD_PREFIX = b"OCBRBLOB"


@dataclass(frozen=True)
class Scope:
    """A deduplication scope: blocks are shared only between backups of the same scope.

    `id_key` keys the block ids (32 bytes, unique per scope, also for unencrypted scopes so
    that ids reveal nothing about content to someone without the key). `data_key` (32 bytes)
    encrypts the blobs with AES-256-GCM; None stores them unencrypted. The caller obtains the
    keys (for example by unwrapping a data key through KMS); the chunk store never stores them.
    """

    name: str
    id_key: bytes = field(repr=False)
    data_key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.name or len(self.name.encode()) > 255:
            raise ValueError("scope name must be 1..255 bytes")
        if len(self.id_key) != 32:
            raise ValueError("scope id_key must be 32 bytes")
        if self.data_key is not None and len(self.data_key) != 32:
            raise ValueError("scope data_key must be 32 bytes")

    @property
    def encrypted(self) -> bool:
        return self.data_key is not None


def key_check(key: bytes | None) -> bytes:
    """16 bytes that identify `key` without revealing it (zeros for no key)."""
    if key is None:
        return bytes(16)
    return blake3.blake3(b"opencbr/key-check/v1", key=key).digest()[:16]


class BlockCodec:
    """Hashes, compresses and encrypts blocks of one scope; safe to share between threads.

    `nonce_source` returns 12-byte AES-GCM nonces; the default is random (``os.urandom``).
    A deterministic source exists only for golden-file tests: see `deterministic_nonces`.
    """

    def __init__(
        self,
        scope: Scope,
        *,
        level: int = DEFAULT_ZSTD_LEVEL,
        nonce_source: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.scope = scope
        self.level = level
        self._aead = AESGCM(scope.data_key) if scope.data_key is not None else None
        self._nonce = nonce_source or (lambda _block_id: os.urandom(NONCE_SIZE))
        self._local = threading.local()

    def block_id(self, data: bytes | memoryview) -> bytes:
        return blake3.blake3(data, key=self.scope.id_key).digest()

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(level=self.level)
            self._local.compressor = compressor
        return compressor

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        decompressor = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = zstandard.ZstdDecompressor()
            self._local.decompressor = decompressor
        return decompressor

    def encode(self, block_id: bytes, data: bytes | memoryview) -> bytes:
        """The blob for `data` (whose id is `block_id`)."""
        raw_len = len(data)
        packed: bytes | memoryview = self._compressor().compress(data)
        flags = FLAG_ZSTD
        if len(packed) >= raw_len * RAW_THRESHOLD:
            packed, flags = data, 0
        if self._aead is None:
            return _HEAD.pack(BLOB_VERSION, flags, raw_len) + packed
        flags |= FLAG_AESGCM
        head = _HEAD.pack(BLOB_VERSION, flags, raw_len)
        nonce = self._nonce(block_id)
        sealed = self._aead.encrypt(nonce, packed, _AAD_PREFIX + head + block_id)
        return head + nonce + sealed

    def decode(self, block_id: bytes, blob: bytes | memoryview) -> bytes:
        """The block's plaintext; raises `CorruptBlock` unless it authenticates and hashes to id."""
        if len(blob) < _HEAD.size:
            raise CorruptBlock(block_id, f"blob of {len(blob)} bytes is shorter than its header")
        version, flags, raw_len = _HEAD.unpack_from(blob)
        if version != BLOB_VERSION or flags & ~(FLAG_ZSTD | FLAG_AESGCM):
            raise CorruptBlock(block_id, f"unknown blob version {version} or flags {flags:#x}")
        payload = memoryview(blob)[_HEAD.size :]
        if flags & FLAG_AESGCM:
            payload = memoryview(self._decrypt(block_id, blob, payload))
        elif self._aead is not None:
            raise CorruptBlock(block_id, "unencrypted blob in an encrypted scope")
        data = self._inflate(block_id, payload, raw_len) if flags & FLAG_ZSTD else bytes(payload)
        if len(data) != raw_len:
            raise CorruptBlock(block_id, f"{len(data)} bytes where the header says {raw_len}")
        if self.block_id(data) != block_id:
            raise CorruptBlock(block_id, "content does not hash to the block id")
        return data

    def _decrypt(self, block_id: bytes, blob: bytes | memoryview, payload: memoryview) -> bytes:
        if self._aead is None:
            raise CorruptBlock(block_id, "encrypted blob but the scope has no data key")
        if len(payload) < NONCE_SIZE + TAG_SIZE:
            raise CorruptBlock(block_id, "encrypted blob is truncated")
        head = bytes(blob[: _HEAD.size])
        nonce = bytes(payload[:NONCE_SIZE])
        try:
            return self._aead.decrypt(nonce, payload[NONCE_SIZE:], _AAD_PREFIX + head + block_id)
        except InvalidTag:
            raise CorruptBlock(block_id, "authentication failed (damaged or swapped)") from None

    def _inflate(self, block_id: bytes, payload: memoryview, raw_len: int) -> bytes:
        try:
            return self._decompressor().decompress(payload, max_output_size=raw_len)
        except zstandard.ZstdError as exc:
            raise CorruptBlock(block_id, f"zstd frame does not decompress: {exc}") from None


def deterministic_nonces(scope: Scope) -> Callable[[bytes], bytes]:
    """Nonces derived from the block id under the data key: for reproducible golden files only.

    Safe only while one id is always encoded to the same plaintext (same zstd version and
    level); a production store uses random nonces.
    """
    key = scope.data_key or bytes(32)

    def nonce(block_id: bytes) -> bytes:
        return blake3.blake3(b"opencbr/golden-nonce/v1" + block_id, key=key).digest()[:NONCE_SIZE]

    return nonce
