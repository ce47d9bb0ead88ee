"""`opencbr serve --demo` start-up: the demo credentials file and the database may be deleted
independently; start-up reconciles them and always prints credentials that work."""

from __future__ import annotations

import io
import json
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from opencbr.api.runtime import build_runtime
from opencbr.cli import serving
from opencbr.cli.serving import DEMO_CREDENTIALS_FILE, DEMO_TENANTS, ensure_demo_tenants
from opencbr.core.context import Runtime
from opencbr.core.logging import logging_config
from opencbr.core.settings import Settings
from opencbr.iam import service as iam

REGIONS = ["region-1", "region-2"]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("OPENCBR_DATA_DIR", "OPENCBR_DATABASE_URL", "OPENCBR_ROOT_KEY", "OPENCBR_REGIONS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data"


@pytest.fixture
def start(data_dir: Path) -> Iterator[Any]:
    """`serve --demo` up to the printed credentials: a fresh runtime on the data directory
    (SQLite and root key file in it, as by default), then the demo tenants."""
    built: list[Runtime] = []

    def run() -> tuple[Runtime, dict[str, Any]]:
        runtime = build_runtime(Settings(data_dir=data_dir, regions=REGIONS))
        built.append(runtime)
        return runtime, ensure_demo_tenants(runtime)

    yield run
    for runtime in built:
        runtime.database.dispose()


def saved(data_dir: Path) -> dict[str, Any]:
    path = data_dir / DEMO_CREDENTIALS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content: dict[str, Any] = json.loads(path.read_text())
    return content


def assert_working(runtime: Runtime, tenants: dict[str, Any]) -> None:
    """Every printed access key resolves, to its tenant, with the printed secret; the printed
    projects are the tenant's; a printed password signs in."""
    assert list(tenants) == list(DEMO_TENANTS)
    with runtime.database.unit_of_work() as session:
        for name, creds in tenants.items():
            secret, who = iam.resolve_access_key(session, runtime.root_key, creds["access_key"])
            assert (secret, who.domain_id, who.user_name) == (
                creds["secret_key"],
                creds["domain_id"],
                name,
            )
            projects = iam.list_projects(session, creds["domain_id"])
            assert {p.region: p.id for p in projects} == creds["projects"]
            assert set(creds["projects"]) == set(REGIONS)


def test_first_start_creates_the_tenants_and_a_private_file(start: Any, data_dir: Path) -> None:
    runtime, tenants = start()
    assert saved(data_dir) == tenants
    assert_working(runtime, tenants)
    with runtime.database.unit_of_work() as session:
        for creds in tenants.values():
            iam.issue_token(session, creds["user_name"], creds["password"], timedelta(minutes=1))


def test_a_second_start_keeps_working_credentials(start: Any, data_dir: Path) -> None:
    _, first = start()
    _, again = start()
    assert again == first == saved(data_dir)


def test_credentials_file_deleted_database_kept(start: Any, data_dir: Path) -> None:
    _, first = start()
    (data_dir / DEMO_CREDENTIALS_FILE).unlink()

    runtime, tenants = start()  # used to stop on "The domain name 'demo-alice' is already in use"
    assert saved(data_dir) == tenants
    assert_working(runtime, tenants)
    for name in DEMO_TENANTS:  # the same tenants, with new keys
        assert tenants[name]["domain_id"] == first[name]["domain_id"]
        assert tenants[name]["projects"] == first[name]["projects"]
        assert tenants[name]["access_key"] != first[name]["access_key"]
        assert tenants[name]["password"] != first[name]["password"]  # only a hash was left
    with runtime.database.unit_of_work() as session:  # the new password signs in
        for creds in tenants.values():
            iam.issue_token(session, creds["user_name"], creds["password"], timedelta(minutes=1))
    _, third = start()
    assert third == tenants


def test_database_deleted_file_kept(start: Any, data_dir: Path) -> None:
    runtime, first = start()
    runtime.database.dispose()
    (data_dir / "opencbr.db").unlink()

    runtime, tenants = start()  # used to print the old, dead credentials
    assert saved(data_dir) == tenants
    assert_working(runtime, tenants)
    for name in DEMO_TENANTS:
        assert tenants[name]["domain_id"] != first[name]["domain_id"]
        assert tenants[name]["password"]


def test_lost_key_or_project_is_reissued_and_the_password_kept(start: Any, data_dir: Path) -> None:
    runtime, first = start()
    alice, bob = (first[name] for name in DEMO_TENANTS)
    with runtime.database.unit_of_work() as session:
        iam.delete_access_key(session, alice["access_key"])
        iam.delete_project(session, bob["projects"]["region-2"])

    runtime, tenants = start()
    assert saved(data_dir) == tenants
    assert_working(runtime, tenants)
    assert tenants["demo-alice"]["access_key"] != alice["access_key"]
    assert tenants["demo-alice"]["password"] == alice["password"]
    assert tenants["demo-bob"]["projects"]["region-2"] != bob["projects"]["region-2"]


def test_unreadable_file_is_replaced(start: Any, data_dir: Path) -> None:
    start()
    path = data_dir / DEMO_CREDENTIALS_FILE
    path.write_text("{not json")
    path.chmod(0o644)
    runtime, tenants = start()
    assert saved(data_dir) == tenants
    assert_working(runtime, tenants)


def test_the_banner_names_a_command_that_runs_and_comes_last(
    start: Any, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Console(width=200, record=True, file=io.StringIO())
    monkeypatch.setattr(serving, "console", recorder)
    _, tenants = start()
    serving._print_demo(tenants, "http://127.0.0.1:8080", data_dir / DEMO_CREDENTIALS_FILE)
    assert "uv run opencbr whoami" in recorder.export_text()  # `opencbr` alone is not on PATH
    # The migration steps no longer print between the start and the credentials.
    assert logging_config("text", "INFO")["loggers"]["alembic"]["level"] == "WARNING"
    assert logging_config("text", "DEBUG")["loggers"]["alembic"]["level"] == "DEBUG"
