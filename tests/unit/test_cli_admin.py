"""`opencbr admin ...` on a SQLite data directory: every verb answers `--json` (deletes too),
errors with `--json` are a JSON object on stdout with the error's exit code, and the data
directory comes from `--data-dir` or `OPENCBR_DATA_DIR`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from opencbr.cli.main import app

TENANT_KEYS = {
    "domain_id",
    "domain_name",
    "projects",
    "user_name",
    "password",
    "access_key",
    "secret_key",
}
MISSING = "0" * 32


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """No deployment settings of the machine running the tests."""
    for name in ("OPENCBR_DATA_DIR", "OPENCBR_DATABASE_URL", "OPENCBR_ROOT_KEY", "OPENCBR_REGIONS"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str, expect: int = 0, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == expect, result.output
    return result


def as_json(*args: str, expect: int = 0, env: dict[str, str] | None = None) -> Any:
    return json.loads(run(*args, "--json", expect=expect, env=env).stdout)


def test_tenant_create_and_delete_with_data_dir(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    creds = as_json("admin", "tenant", "create", "acme", "--region", "region-1", *data)
    assert set(creds) == TENANT_KEYS
    assert creds["domain_name"] == creds["user_name"] == "acme"
    assert set(creds["projects"]) == {"region-1"}
    assert (len(creds["access_key"]), len(creds["secret_key"])) == (20, 40)
    assert (tmp_path / "data" / "opencbr.db").exists()

    listed = as_json("admin", "tenant", "list", *data)
    assert [(d["id"], d["name"]) for d in listed] == [(creds["domain_id"], "acme")]

    deleted = as_json("admin", "tenant", "delete", creds["domain_id"], *data)
    assert deleted == {"id": creds["domain_id"], "deleted": True}
    assert as_json("admin", "tenant", "list", *data) == []


def test_every_admin_delete_answers_json_from_the_environment(tmp_path: Path) -> None:
    env = {"OPENCBR_DATA_DIR": str(tmp_path / "env-data")}
    domain = as_json("admin", "domain", "create", "globex", env=env)
    project = as_json("admin", "project", "create", domain["id"], "--region", "region-2", env=env)
    user = as_json(
        "admin", "user", "create", domain["id"], "hank", "--password", "s3cret-pass", env=env
    )
    key = as_json("admin", "access-key", "create", user["id"], env=env)
    assert (tmp_path / "env-data" / "opencbr.db").exists()

    deleted = [
        as_json("admin", "access-key", "delete", key["access_key"], env=env),
        as_json("admin", "user", "delete", user["id"], env=env),
        as_json("admin", "project", "delete", project["id"], env=env),
        as_json("admin", "domain", "delete", domain["id"], env=env),
    ]
    ids = [key["access_key"], user["id"], project["id"], domain["id"]]
    assert deleted == [{"id": i, "deleted": True} for i in ids]
    assert as_json("admin", "domain", "list", env=env) == []


def test_text_output_is_unchanged_without_json(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    domain = as_json("admin", "domain", "create", "initech", *data)
    done = run("admin", "domain", "delete", domain["id"], *data)
    assert done.stdout.strip() == f"deleted domain {domain['id']}"


def test_errors_with_json_are_json_on_stdout(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    error = as_json("admin", "tenant", "delete", MISSING, *data, expect=4)
    assert error == {"error_code": "IAM.0004", "error_msg": f"Domain {MISSING} not found."}

    as_json("admin", "domain", "create", "umbrella", *data)
    taken = as_json(
        "admin", "tenant", "create", "umbrella", "--region", "region-1", *data, expect=5
    )
    assert taken["error_code"] == "IAM.0010"
    assert "umbrella" in taken["error_msg"]


def test_errors_without_json_stay_text_on_stderr(tmp_path: Path) -> None:
    failed = run("admin", "user", "delete", MISSING, "--data-dir", str(tmp_path), expect=4)
    assert failed.stdout == ""
    assert failed.stderr.startswith("error IAM.")
