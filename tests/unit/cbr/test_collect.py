"""The collection job's heartbeat: a long collection keeps its lease."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from opencbr.cbr.collect import _heartbeat


def test_a_collection_renews_its_lease_four_times_per_lease() -> None:
    now = [0.0]
    reports: list[int] = []
    ctx: Any = SimpleNamespace(lease=timedelta(seconds=8), progress=reports.append)
    beat = _heartbeat(ctx, percent=10, clock=lambda: now[0])
    for now[0] in (0.5, 1.9, 2.0, 2.5, 3.9, 4.1, 9.0):
        beat()
    assert reports == [10, 10, 10]  # at 2.0, 4.1 and 9.0 s: at most one per quarter lease
