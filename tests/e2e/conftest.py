"""End-to-end fixtures: a live server whose job workers run in the same process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opencbr.api.runtime import start_workers
from opencbr.core.context import Runtime
from opencbr.core.jobs import WorkerPool


@pytest.fixture
def workers(runtime: Runtime) -> Iterator[WorkerPool]:
    """Every slice's job handlers, as `opencbr serve` runs them."""
    pool = start_workers(runtime, threads=2)
    pool.poll_seconds = 0.05
    yield pool
    pool.stop()
