"""The workers' scheduled scrub: none in the period the process starts with, then one every
`scrub_period_hours`, its result in the operator's operation log; 0 turns it off."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from opencbr.api.runtime import build_runtime
from opencbr.cbr.models import OperationLog
from opencbr.cbr.scrub import scrub_tick
from opencbr.core.context import Runtime
from opencbr.core.settings import Settings


def _scrubs(runtime: Runtime) -> int:
    with runtime.database.unit_of_work() as session:
        query = select(func.count()).where(
            OperationLog.project_id == "", OperationLog.operation_type == "scrub"
        )
        return session.scalar(query) or 0


def test_a_scrub_runs_once_a_period_after_the_first(settings: Settings) -> None:
    period = 0.2 / 3600  # hours
    runtime = build_runtime(settings.model_copy(update={"scrub_period_hours": period}))
    try:
        before = _scrubs(runtime)
        tick = scrub_tick(runtime)
        tick()
        assert _scrubs(runtime) == before  # not at start: the first period begins then
        time.sleep(0.25)
        tick()
        tick()  # within the period: nothing more
        assert _scrubs(runtime) == before + 1
    finally:
        runtime.database.dispose()


def test_no_scrub_when_the_period_is_zero(settings: Settings) -> None:
    runtime = build_runtime(settings.model_copy(update={"scrub_period_hours": 0}))
    try:
        before = _scrubs(runtime)
        scrub_tick(runtime)()
        assert _scrubs(runtime) == before
    finally:
        runtime.database.dispose()
