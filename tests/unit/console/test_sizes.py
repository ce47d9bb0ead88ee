"""The console writes sizes in the product's units: GB = 2^30 bytes, and MB, KB alike."""

from __future__ import annotations

import pytest

from opencbr.console.sizes import UNITS_NOTE, human_bytes, size_markup
from opencbr.console.web import templates


@pytest.mark.parametrize(
    ("nbytes", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KB"),
        (4 * 2**20, "4.0 MB"),
        (2**30, "1.0 GB"),  # a vault or disk of "1 GB"
        (50 * 2**30, "50.0 GB"),
        (3 * 2**40, "3.0 TB"),
        (5 * 2**50, "5120.0 TB"),
    ],
)
def test_sizes_use_powers_of_1024_with_plain_names(nbytes: int, shown: str) -> None:
    assert human_bytes(nbytes) == shown


def test_a_shown_size_carries_its_exact_bytes() -> None:
    assert str(size_markup(4 * 2**20)) == (
        '<span class="size" title="4,194,304 bytes">4.0 MB</span>'
    )
    page = templates.from_string("{{ n|size }} · {{ units_note }}").render(n=2**30)
    assert page == ('<span class="size" title="1,073,741,824 bytes">1.0 GB</span> · ' + UNITS_NOTE)
    assert "2^30" in UNITS_NOTE


def test_the_command_line_writes_the_same_units_without_a_trailing_tenth() -> None:
    from opencbr.core.sizes import human_bytes as shared

    assert shared is human_bytes  # one formatter for the console and the command line
    assert [shared(n, trim=True) for n in (0, 512, 1536 * 2**10, 10 * 2**30)] == [
        "0 B",
        "512 B",
        "1.5 MB",
        "10 GB",
    ]
    assert shared(None) == ""
