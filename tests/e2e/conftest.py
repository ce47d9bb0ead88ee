"""End-to-end fixtures: a live server whose job workers run in the same process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

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


@pytest.fixture
def s3_deployment(tmp_path: Path) -> Iterator[Deployment]:
    """A deployment on SQLite whose store is in the Swift S3 store (skipped without it)."""
    from opencbr.chunkstore.s3 import S3Backend, S3Options
    from tests.e2e.recovery_fixtures import S3_SETTINGS

    options = S3Options(
        endpoint=S3_SETTINGS["s3_endpoint"],
        region=S3_SETTINGS["s3_region"],
        access_key=S3_SETTINGS["s3_access_key"],
        secret_key=S3_SETTINGS["s3_secret_key"],
    )
    url = f"s3://opencbr-recovery-{uuid.uuid4().hex[:10]}/store"
    try:
        backend = S3Backend.connect(url, options)
    except Exception as exc:  # no S3 store on this machine
        pytest.skip(f"no S3 store ({exc}); scripts/setup-swift.sh starts one")
    made = Deployment("sqlite", tmp_path, store_url=url)
    yield made
    for name in list(backend.list("")):
        backend.delete(name)
    backend.client.delete_bucket(Bucket=backend.bucket)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Debian's Chromium, headless: the console tests' browser."""


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One browser for the whole session: Playwright's sync API allows one instance a thread."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/setup-chromium.sh installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
