"""Numbers and ids on the KMS wire: ASCII only, and no trailing newline."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from opencbr.core.ids import is_hex32, is_uuid
from opencbr.core.numbers import whole_number
from opencbr.kms.errors import KmsValidationFailed
from opencbr.kms.grants import _check_name
from opencbr.kms.keys import _check_alias, _pending_days
from opencbr.kms.schemas import ListKeysBody, page
from opencbr.kms.service import _length, requested_length

# Unicode digits str.isdigit() takes: superscript two (int() refuses it), Arabic-Indic and
# full-width digits (int() reads them), and ASCII digits with a trailing newline or space.
NOT_NUMBERS = ["²", "٣", "٣٠", "\uff17", "30\n", " 30", "3 0", "+30", "-30", "3.0", "", "9" * 5000]
UUID = "0d0466b0-e727-4d9c-b35d-f84bb474a37f"


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_whole_number_takes_only_ascii_digits(text: str) -> None:
    assert whole_number(text) is None


def test_whole_number_reads_ascii_digits_and_ints() -> None:
    assert [whole_number(v) for v in ("0", "007", "1096", 42, -1)] == [0, 7, 1096, 42, None]


@pytest.mark.parametrize("text", NOT_NUMBERS[:-2])
def test_every_numeric_parameter_refuses_unicode_digits(text: str) -> None:
    checks: list[Callable[[], object]] = [
        lambda: _pending_days(text),
        lambda: requested_length(None, text),
        lambda: _length("datakey_plain_length", text),
        lambda: page(ListKeysBody(limit=text)),
        lambda: page(ListKeysBody(marker=text)),
    ]
    for check in checks:
        with pytest.raises(KmsValidationFailed) as caught:
            check()
        assert caught.value.code == "KMS.0206"


def test_ascii_numbers_still_pass() -> None:
    assert _pending_days("30") == 30
    assert requested_length(None, "256") == 32
    assert page(ListKeysBody(limit="5", marker="10")) == (10, 5)


def test_ids_refuse_a_trailing_newline() -> None:
    assert is_uuid(UUID)
    assert is_hex32("a" * 32)
    for bad in (UUID + "\n", "\n" + UUID, UUID + " "):
        assert not is_uuid(bad)
    assert not is_hex32("a" * 32 + "\n")


@pytest.mark.parametrize("check", [_check_alias, _check_name])
def test_aliases_and_grant_names_refuse_a_trailing_newline(check: Callable[[str], str]) -> None:
    assert check("k2") == "k2"
    with pytest.raises(KmsValidationFailed) as caught:
        check("k2\n")
    assert caught.value.code == "KMS.0206"
