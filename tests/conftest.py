"""Shared fixtures: real SQLite and PostgreSQL databases, a runtime, a real loopback server."""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn

from opencbr.api.app import create_app
from opencbr.api.runtime import build_runtime
from opencbr.core.context import Runtime
from opencbr.core.settings import Settings
from opencbr.iam import service as iam
from opencbr.iam.service import TenantCredentials

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One throw-away PostgreSQL database for the whole run (tests use unique names)."""
    name = f"opencbr_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'opencbr.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


# One deployment's root key: the PostgreSQL database is shared by the run, as it would be by
# every process of one deployment, so every test's runtime must seal with the same key.
ROOT_KEY = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, root_key=ROOT_KEY)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    built = build_runtime(settings)
    yield built
    built.database.dispose()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


TenantFactory = Callable[..., TenantCredentials]


@pytest.fixture
def make_tenant(runtime: Runtime) -> TenantFactory:
    def make(
        regions: tuple[str, ...] = ("region-1", "region-2"), name: str | None = None
    ) -> TenantCredentials:
        with runtime.database.unit_of_work() as session:
            return iam.create_tenant(
                session,
                runtime.root_key,
                runtime.settings.regions,
                name or unique("t"),
                list(regions),
            )

    return make


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """A real uvicorn server on a loopback port, in a thread of the test process."""

    def __init__(self, runtime: Runtime) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(runtime), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def server(runtime: Runtime) -> Iterator[LiveServer]:
    with LiveServer(runtime) as live:
        yield live
