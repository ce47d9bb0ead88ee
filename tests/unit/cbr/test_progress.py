"""A job's progress reports: the job row is written when the percent moves, or to renew the
lease, not for every batch of blocks."""

from __future__ import annotations

import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from opencbr.cbr.jobs.common import JobProgress


def fake_job(lease: timedelta) -> tuple[Any, list[int]]:
    reports: list[int] = []
    return SimpleNamespace(lease=lease, progress=reports.append, payload={}), reports


def test_the_job_row_is_written_when_the_percent_moves() -> None:
    ctx, reports = fake_job(timedelta(seconds=60))
    report = JobProgress(ctx)
    for percent in (0, 0, 0, 1, 1, 2, 2, 2, 2, 95):
        report(percent)
    assert reports == [0, 1, 2, 95]


def test_an_unmoving_percent_is_written_again_to_renew_the_lease() -> None:
    ctx, reports = fake_job(timedelta(milliseconds=40))  # renewed every 10 ms
    report = JobProgress(ctx)
    report(5)
    report(5)
    time.sleep(0.02)
    report(5)
    assert reports == [5, 5]


def test_a_collection_renews_its_lease_four_times_per_lease() -> None:
    # A collection reports one percent per phase, once for each object it reads or deletes.
    now = [0.0]
    ctx, reports = fake_job(timedelta(seconds=8))
    report = JobProgress(ctx, clock=lambda: now[0])
    for now[0] in (0.5, 1.9, 2.0, 2.5, 3.9, 4.1, 9.0):
        report(10)
    assert reports == [10, 10, 10]  # at 0.5, 2.5 and 9.0 s: at most one per quarter lease
