"""End-to-end fixtures: a live server whose job workers run in the same process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opencbr.api.runtime import start_workers
from opencbr.core.context import Runtime
from opencbr.core.jobs import WorkerPool
from tests.e2e.recovery_fixtures import Deployment


@pytest.fixture
def workers(runtime: Runtime) -> Iterator[WorkerPool]:
    """Every slice's job handlers, as `opencbr serve` runs them."""
    pool = start_workers(runtime, threads=2)
    pool.poll_seconds = 0.05
    yield pool
    pool.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """A deployment whose database a test may delete (recovery tests)."""
    made = Deployment(request.param, tmp_path)
    yield made
    made.drop()
