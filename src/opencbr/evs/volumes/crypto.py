"""Sector encryption of volume images: AES-XTS-256, dm-crypt ``aes-xts-plain64`` layout.

Construction
    A disk has one random 512-bit data key (``DiskKey``): the first 32 bytes are the AES-256
    data key, the last 32 bytes the tweak key, exactly as dm-crypt and the kernel's ``xts(aes)``
    split it. The image is encrypted in 4096-byte data units; the tweak of a unit is the
    ``plain64`` IV: the unit's byte offset divided by 512, as a 64-bit little-endian integer
    padded with zeros to 16 bytes. That is dm-crypt's default for ``sector_size:4096`` (the IV
    counts 512-byte sectors unless ``iv_large_sectors`` is set), so a hypervisor host can open an
    image with a plain mapping and no header::

        dmsetup create NAME --table "0 SIZE/512 crypt aes-xts-plain64 KEYHEX 0 DEVICE 0 \
            1 sector_size:4096"

    where KEYHEX is the 128 hex digits of the key and DEVICE a loop device over the image

    (`dm_crypt_table` builds that line.)

Why 4096-byte units and not 512
    Every unit is a tweak reset and an update in OpenSSL (``xts.py``), about 2.5 microseconds
    of call overhead from Python whatever the unit size, so 512-byte units would cost several
    times as much per byte. 4096 is the largest sector size dm-crypt accepts. Guests see
    512-byte logical sectors either way: a write that covers part of a 4096-byte unit is a
    read-modify-write of that unit under the volume lock.

Why plain dm-crypt and not LUKS2
    The key is managed outside the image: the service keeps it wrapped by KMS (envelope
    encryption) beside the disk record and hands the raw key to this layer. A LUKS2 header would
    add a second key store (passphrase keyslots and a PBKDF) that must be kept in step with KMS,
    would shift the data area by the header size so raw offsets no longer match guest offsets,
    and would put key material inside every copy of the image. With the plain layout the image is
    ciphertext only and image offset == guest offset, which the changed-block map and backups
    rely on. The cost is that nothing in the image says it is encrypted or which key it needs;
    the volume metadata records that (cipher, unit size, a key check value).

Never-written units
    A unit that was never written is a file hole and reads back as zeros from the file. This
    layer decrypts an all-zero ciphertext unit to zeros instead of to noise: a real ciphertext
    unit is all zeros with probability 2**-32768, so the rule only ever matches holes (and the
    zero tails of file-system blocks larger than a unit). A plain dm-crypt mapping does not know
    this rule and shows such units as random bytes, like any fresh dm-crypt device; a caller that
    needs the whole disk to read as zeros through dm-crypt first fills holes with encrypted zeros
    (``LocalVolumeDriver.fill_holes``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os

from .xts import XtsUnits

__all__ = [
    "CIPHER_NAME",
    "IV_SECTOR_SIZE",
    "SECTOR_SIZE",
    "DiskKey",
    "SectorCipher",
    "dm_crypt_table",
    "is_zero",
]

CIPHER_NAME = "aes-xts-plain64"
SECTOR_SIZE = 4096
"""Bytes per XTS data unit (dm-crypt ``sector_size``)."""
IV_SECTOR_SIZE = 512
"""The ``plain64`` IV counts units of this many bytes (dm-crypt default)."""

_KEY_CHECK_LABEL = b"opencbr evs disk key check v1"
_ZERO_SECTOR = bytes(SECTOR_SIZE)


def is_zero(data: bytes | bytearray | memoryview) -> bool:
    """True when every byte is zero.

    Bytes against bytes is one memcmp; CPython compares a memoryview with bytes element by
    element, about 60 times slower than copying it to bytes first.
    """
    raw = data if isinstance(data, bytes | bytearray) else bytes(data)
    return raw == _zeros(len(raw))


@functools.lru_cache(maxsize=8)
def _zeros(length: int) -> bytes:
    return bytes(length)


class DiskKey:
    """A disk's raw 512-bit data key. The caller wraps and stores it (KMS); this only uses it."""

    __slots__ = ("_raw",)
    SIZE = 64

    def __init__(self, raw: bytes) -> None:
        if len(raw) != self.SIZE:
            raise ValueError(f"a disk key is {self.SIZE} bytes, got {len(raw)}")
        if hmac.compare_digest(raw[:32], raw[32:]):
            raise ValueError("the two halves of an XTS key must differ")
        self._raw = bytes(raw)

    @classmethod
    def generate(cls) -> DiskKey:
        return cls(os.urandom(cls.SIZE))

    @property
    def raw(self) -> bytes:
        return self._raw

    def check_value(self) -> str:
        """A keyed digest stored with the volume to recognise the right key (reveals nothing)."""
        return hmac.new(self._raw, _KEY_CHECK_LABEL, hashlib.sha256).hexdigest()[:32]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DiskKey) and hmac.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(self.check_value())

    def __repr__(self) -> str:
        return "DiskKey(<redacted>)"


def dm_crypt_table(key: DiskKey, size_bytes: int, device: str) -> str:
    """The dm-crypt table line that maps an image of this layer as a plaintext block device."""
    return (
        f"0 {size_bytes // 512} crypt {CIPHER_NAME} {key.raw.hex()} 0 {device} 0 "
        f"1 sector_size:{SECTOR_SIZE}"
    )


class SectorCipher:
    """Encrypts and decrypts whole, aligned runs of 4096-byte units at their image offset."""

    __slots__ = ("_units",)

    def __init__(self, key: DiskKey, *, use_openssl: bool = True) -> None:
        self._units = XtsUnits(key.raw, SECTOR_SIZE, use_openssl=use_openssl)

    def encrypt(self, plaintext: bytes | bytearray | memoryview, offset: int) -> bytearray:
        """Ciphertext of `plaintext`, which starts at image byte `offset` (both unit-aligned)."""
        return self._run(memoryview(plaintext), offset, encrypt=True)

    def decrypt(self, ciphertext: bytes | bytearray | memoryview, offset: int) -> bytearray:
        """Plaintext of `ciphertext` read at `offset`; all-zero units (holes) give zeros."""
        return self._run(memoryview(ciphertext), offset, encrypt=False)

    def _run(self, data: memoryview, offset: int, *, encrypt: bool) -> bytearray:
        length = len(data)
        if offset % SECTOR_SIZE or length % SECTOR_SIZE:
            raise ValueError("encrypted runs must be aligned to the 4096-byte unit")
        out = bytearray(data)  # transformed in place; all-zero ciphertext units stay zeros
        # The zero test reads a unit of `out` before it is transformed: units go in order.
        first = offset // IV_SECTOR_SIZE
        step = SECTOR_SIZE // IV_SECTOR_SIZE
        units = (
            (pos, (first + n * step).to_bytes(16, "little"))
            for n, pos in enumerate(range(0, length, SECTOR_SIZE))
            if encrypt or not out.startswith(_ZERO_SECTOR, pos)
        )
        self._units.apply(out, units, encrypt=encrypt)
        return out
