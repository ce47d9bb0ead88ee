"""The OpenSSL XTS path and the `cryptography` fallback give the same bytes."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencbr.evs.volumes.crypto import SECTOR_SIZE, SectorCipher
from opencbr.evs.volumes.xts import XtsUnits, openssl_available

from .conftest import KEY

FAST = SectorCipher(KEY)
REFERENCE = SectorCipher(KEY, use_openssl=False)


def test_openssl_path_is_in_use_here() -> None:
    """The fast path must be what the tests exercise on this host, not the fallback."""
    assert openssl_available()


@settings(max_examples=40, deadline=None)
@given(
    unit_offset=st.integers(min_value=0, max_value=(1 << 40) // SECTOR_SIZE),
    units=st.lists(st.booleans(), min_size=1, max_size=12),
)
def test_both_paths_agree(unit_offset: int, units: list[bool]) -> None:
    """Encryption, decryption and the all-zero-unit rule are byte-identical either way."""
    offset = unit_offset * SECTOR_SIZE
    plain = b"".join(os.urandom(SECTOR_SIZE) if data else bytes(SECTOR_SIZE) for data in units)
    encrypted = FAST.encrypt(plain, offset)
    assert encrypted == REFERENCE.encrypt(plain, offset)
    assert all(
        encrypted[i : i + SECTOR_SIZE] != bytes(SECTOR_SIZE) for i in range(0, len(plain), 4096)
    )
    # A hole (all-zero ciphertext unit) reads back as zeros on both paths.
    holed = bytearray(encrypted)
    holed[:SECTOR_SIZE] = bytes(SECTOR_SIZE)
    expected = bytes(SECTOR_SIZE) + plain[SECTOR_SIZE:]
    assert FAST.decrypt(holed, offset) == REFERENCE.decrypt(holed, offset) == expected
    assert FAST.decrypt(encrypted, offset) == plain


def test_the_input_is_left_alone() -> None:
    plain = bytearray(os.urandom(2 * SECTOR_SIZE))
    before = bytes(plain)
    FAST.decrypt(FAST.encrypt(memoryview(plain), 0), 0)
    assert plain == before


def test_a_unit_outside_the_buffer_is_refused() -> None:
    units = XtsUnits(KEY.raw, SECTOR_SIZE)
    buffer = bytearray(SECTOR_SIZE)
    with pytest.raises(ValueError, match="outside"):
        units.apply(buffer, [(SECTOR_SIZE // 2, bytes(16))], encrypt=True)
    assert buffer == bytes(SECTOR_SIZE)
