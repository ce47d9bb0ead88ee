"""A job's progress reports: the job row is written when the percent moves, or to renew the
lease, not for every batch of blocks."""

from __future__ import annotations

import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from opencbr.cbr.engine import _Progress


def fake_job(lease: timedelta) -> tuple[Any, list[int]]:
    reports: list[int] = []
    return SimpleNamespace(lease=lease, progress=reports.append, payload={}), reports


def test_the_job_row_is_written_when_the_percent_moves() -> None:
    ctx, reports = fake_job(timedelta(seconds=60))
    report = _Progress(ctx)
    for percent in (0, 0, 0, 1, 1, 2, 2, 2, 2, 95):
        report(percent)
    assert reports == [0, 1, 2, 95]


def test_an_unmoving_percent_is_written_again_to_renew_the_lease() -> None:
    ctx, reports = fake_job(timedelta(milliseconds=40))  # renewed every 10 ms
    report = _Progress(ctx)
    report(5)
    report(5)
    time.sleep(0.02)
    report(5)
    assert reports == [5, 5]
