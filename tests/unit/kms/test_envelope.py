"""The wrapped data-key format and the pure parameter rules of the KMS slice."""

from __future__ import annotations

import hashlib

import pytest

from opencbr.kms import envelope
from opencbr.kms.errors import GrantOperationsInvalid, KmsValidationFailed, MissingParameter
from opencbr.kms.grants import _check_operations
from opencbr.kms.keys import _check_alias, _pending_days
from opencbr.kms.service import _split_with_digest, requested_length

KEY_ID = "0d0466b0-e727-4d9c-b35d-f84bb474a37f"
OTHER_ID = "1d0466b0-e727-4d9c-b35d-f84bb474a37f"
MASTER = bytes(range(32))
DATA_KEY = bytes(range(100, 132))
# version 1, an all-zero nonce, AES-256-GCM(MASTER) of DATA_KEY with AAD "disk-1":
GOLDEN = bytes.fromhex(
    "01000000000000000000000000"
    "6ad9d3b9dd45e9d664c5c75a685de3eaa636202450f81a54fce3cdfc457edfd5"
    "3132e351ebe06034d2b5c4a55d9af9c7"
)


def test_golden_wrapped_key_still_opens() -> None:
    assert envelope.unwrap(MASTER, KEY_ID, GOLDEN, "disk-1") == DATA_KEY
    assert len(GOLDEN) == envelope.wrapped_length(len(DATA_KEY)) == 61


def test_wrap_round_trips_and_hides_the_key() -> None:
    wrapped = envelope.wrap(MASTER, KEY_ID, DATA_KEY)
    assert DATA_KEY not in wrapped
    assert wrapped != envelope.wrap(MASTER, KEY_ID, DATA_KEY)  # fresh nonce each time
    assert envelope.unwrap(MASTER, KEY_ID, wrapped) == DATA_KEY


@pytest.mark.parametrize(
    ("key_id", "aad", "blob"),
    [
        (OTHER_ID, "disk-1", GOLDEN),  # the key id is bound: another key's id fails
        (KEY_ID, "disk-2", GOLDEN),  # so is the caller's AAD
        (KEY_ID, "disk-1", GOLDEN[:-1] + bytes([GOLDEN[-1] ^ 1])),  # altered tag
        (KEY_ID, "disk-1", b"\x02" + GOLDEN[1:]),  # unknown version
        (KEY_ID, "disk-1", GOLDEN[:20]),  # truncated
    ],
)
def test_unwrap_refuses_what_was_not_made_for_it(key_id: str, aad: str, blob: bytes) -> None:
    with pytest.raises(envelope.WrapFailed):
        envelope.unwrap(MASTER, key_id, blob, aad)


def test_operations_rules() -> None:
    assert _check_operations(["describe-key", "describe-key"]) == ["describe-key"]
    with pytest.raises(GrantOperationsInvalid, match="more than create-grant"):
        _check_operations(["create-grant"])
    with pytest.raises(GrantOperationsInvalid, match="unknown"):
        _check_operations(["describe-key", "fly"])
    with pytest.raises(MissingParameter):
        _check_operations([])


def test_alias_and_pending_days() -> None:
    assert _check_alias("app/disk:key_1-a") == "app/disk:key_1-a"
    for bad in ["has space", "x" * 256, "evs/default", "é"]:
        with pytest.raises(KmsValidationFailed):
            _check_alias(bad)
    assert _pending_days("7") == 7
    assert _pending_days(1096) == 1096
    for days in ["6", "1097", "seven", "-7"]:
        with pytest.raises(KmsValidationFailed):
            _pending_days(days)
    with pytest.raises(MissingParameter):
        _pending_days(None)


def test_data_key_lengths_and_digest() -> None:
    assert requested_length(None, None) == 32
    assert requested_length("AES_128", None) == 16
    assert requested_length("AES_128", "512") == 64
    for spec, bits in [("RSA_2048", None), (None, "12"), (None, "8200")]:
        with pytest.raises(KmsValidationFailed):
            requested_length(spec, bits)
    with_digest = DATA_KEY + hashlib.sha256(DATA_KEY).digest()
    assert _split_with_digest(with_digest, 32) == DATA_KEY
    assert _split_with_digest(DATA_KEY, 32) == DATA_KEY
    with pytest.raises(KmsValidationFailed):
        _split_with_digest(DATA_KEY + bytes(32), 32)
