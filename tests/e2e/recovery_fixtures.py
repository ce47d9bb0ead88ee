"""A deployment that can be stopped, lose its database and be started again (recovery tests).

Each test gets a database of its own (the shared PostgreSQL database of the run could not
be deleted), a data directory with its own `root.key` and store, and starts the service
(API server and job workers) as `opencbr serve` does, as many times as it likes.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import func, select
from typer.testing import CliRunner

from opencbr.api.runtime import build_runtime, start_workers
from opencbr.chunkstore import ChunkStore, open_backend
from opencbr.cli.main import app
from opencbr.core.clock import utcnow
from opencbr.core.context import Runtime
from opencbr.core.jobs import Job
from opencbr.core.settings import Settings
from tests.conftest import PG_ADMIN, LiveServer

__all__ = ["ADMIN_TOKEN", "S3_SETTINGS", "Deployment", "run_cli", "wait_for_jobs"]

ADMIN_TOKEN = "operator-token-for-tests"
# The S3 store scripts/setup-swift.sh starts (as tests/integration/chunkstore/test_s3_backend).
S3_SETTINGS = {
    "s3_endpoint": os.environ.get("S3_ENDPOINT_URL", "http://127.0.0.1:18080"),
    "s3_region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    "s3_access_key": os.environ.get("AWS_ACCESS_KEY_ID", "test:tester"),
    "s3_secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
}


class Deployment:
    """One deployment's data directory and database, which a test may delete."""

    def __init__(self, kind: str, tmp_path: Path, store_url: str | None = None) -> None:
        self.kind = kind
        self.store_url = store_url  # None: the data directory's store
        self.data_dir = tmp_path / "data"
        self.sqlite_path = tmp_path / "opencbr.db"
        self.pg_name = f"opencbr_recovery_{uuid.uuid4().hex[:12]}"
        self.create_database()

    @property
    def database_url(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.pg_name}"

    def create_database(self) -> None:
        if self.kind == "postgresql":
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_name}"')

    def delete_database(self) -> None:
        """The database is lost; an empty one takes its place (as an operator would make)."""
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.sqlite_path}{suffix}").unlink(missing_ok=True)
            return
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        self.create_database()

    def drop(self) -> None:
        if self.kind == "postgresql":
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')

    def settings(self) -> Settings:
        return Settings(**self.environment())  # type: ignore[arg-type]

    def environment(self) -> dict[str, str]:
        """The deployment's settings as `OPENCBR_*` values (for the CLI: `run_cli(env=...)`)."""
        values = {
            "data_dir": str(self.data_dir),
            "database_url": self.database_url,
            "admin_token": ADMIN_TOKEN,
        }
        if self.store_url:
            values |= {"store_url": self.store_url, **S3_SETTINGS}
        return values

    def cli_env(self) -> dict[str, str]:
        return {f"OPENCBR_{k.upper()}": v for k, v in self.environment().items()}

    def cli_args(self) -> list[str]:
        return ["--data-dir", str(self.data_dir), "--database-url", self.database_url]

    @contextmanager
    def running(self, store_hours_ahead: float = 0) -> Iterator[tuple[Runtime, LiveServer]]:
        """The service, up: API server and job workers; stopped (jobs done) on exit.
        `store_hours_ahead` sets the store's clock later (every object looks that old)."""
        runtime = build_runtime(self.settings())
        if store_hours_ahead:
            url = self.store_url or str(self.data_dir / "store")
            runtime.chunk_store = ChunkStore(
                open_backend(url, runtime.settings),
                clock=lambda: time.time() + store_hours_ahead * 3600,
            )
        pool = start_workers(runtime, threads=2)
        pool.poll_seconds = 0.05
        try:
            with LiveServer(runtime) as server:
                yield runtime, server
                wait_for_jobs(runtime)
        finally:
            pool.stop()
            runtime.database.dispose()


def wait_for_jobs(runtime: Runtime, timeout: float = 60) -> None:
    """Until no job is waiting or running (catalogue records are written by jobs)."""
    deadline = time.monotonic() + timeout
    while True:
        with runtime.database.unit_of_work() as session:
            pending = session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.status.in_(["queued", "running"]), Job.run_after <= utcnow())
            )
        if not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{pending} jobs still pending")
        time.sleep(0.05)


def run_cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env)
