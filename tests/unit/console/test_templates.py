"""The console's shared template pieces, rendered as the pages render them."""

from __future__ import annotations

import pytest

from opencbr.console.web import templates


def _macro(name: str) -> object:
    return getattr(templates.get_template("_macros.html").module, name)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("queued", "running"),
        ("running", "running"),
        ("succeeded", "done"),  # a job
        ("success", "done"),  # an operation log
        ("failed", "failed"),
    ],
)
def test_a_progress_bar_is_neutral_green_when_done_red_only_on_failure(
    status: str, outcome: str
) -> None:
    html = str(_macro("progress")(100, status, "Progress"))  # type: ignore[operator]
    assert f'class="capacity progress progress-{outcome}"' in html
    assert 'role="progressbar"' in html
    assert "capacity-high" not in html  # 100 % done is not a full vault


def test_a_capacity_bar_still_warns_when_the_vault_is_nearly_full() -> None:
    bar = _macro("bar")
    assert "capacity-high" in str(bar(95, "Used"))  # type: ignore[operator]
    assert "capacity-mid" in str(bar(75, "Used"))  # type: ignore[operator]
    assert "capacity-high" not in str(bar(20, "Used"))  # type: ignore[operator]
