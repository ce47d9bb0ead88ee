"""Client verbs that used to print only text: `policy delete` and `kms grant revoke` answer
`--json`, and API errors with `--json` are a JSON object on stdout with the same exit code.
Against a real loopback server on SQLite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from opencbr.cli.main import app
from opencbr.iam.service import TenantCredentials
from tests.conftest import LiveServer, TenantFactory


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only (the shared fixture also runs PostgreSQL)."""
    return f"sqlite:///{tmp_path / 'opencbr.db'}"


class Cli:
    def __init__(self, server: LiveServer, creds: TenantCredentials, home: Path) -> None:
        self.env = {
            "OPENCBR_ENDPOINT": server.url,
            "OPENCBR_ACCESS_KEY": creds.access_key,
            "OPENCBR_SECRET_KEY": creds.secret_key,
            "OPENCBR_PROJECT_ID": creds.projects["region-1"],
            "XDG_CONFIG_HOME": str(home),
        }

    def run(self, *args: str, expect: int = 0) -> Result:
        result = CliRunner().invoke(app, list(args), env=self.env)
        assert result.exit_code == expect, result.output
        return result

    def json(self, *args: str, expect: int = 0) -> Any:
        return json.loads(self.run(*args, "--json", expect=expect).stdout)


@pytest.fixture
def cli(server: LiveServer, make_tenant: TenantFactory, tmp_path: Path) -> Cli:
    return Cli(server, make_tenant(), tmp_path / "config")


def test_policy_delete_json(cli: Cli) -> None:
    policy = cli.json("policy", "create", "--name", "nightly", "--pattern", "FREQ=DAILY;BYHOUR=1")
    assert cli.json("policy", "delete", policy["id"]) == {"id": policy["id"], "deleted": True}
    assert cli.json("policy", "list")["policies"] == []

    error = cli.json("policy", "delete", policy["id"], expect=4)
    assert set(error) == {"error_code", "error_msg", "request_id"}
    assert error["error_code"].startswith("BackupService.")
    text = cli.run("policy", "delete", policy["id"], expect=4)
    assert text.stdout == ""
    assert error["error_code"] in text.stderr


def test_kms_grant_revoke_json(cli: Cli, make_tenant: TenantFactory) -> None:
    grantee = make_tenant().domain_id
    key_id = cli.json("kms", "key", "create", "json-key")["key_id"]
    grant = cli.json("kms", "grant", "create", key_id, grantee, "-o", "describe-key")
    revoked = cli.json("kms", "grant", "revoke", key_id, grant["grant_id"])
    assert revoked == {"key_id": key_id, "grant_id": grant["grant_id"], "revoked": True}
    assert cli.json("kms", "grant", "list", key_id) == []


def test_configure_json_leaves_the_secret_out(cli: Cli, tmp_path: Path) -> None:
    saved = cli.json(
        "configure",
        "--endpoint", "http://127.0.0.1:9",
        "--access-key", "AK",
        "--secret-key", "SK-secret",
        "--project-id", "",
    )  # fmt: skip
    path = tmp_path / "config" / "opencbr" / "profile.json"
    assert saved == {
        "profile": str(path),
        "endpoint": "http://127.0.0.1:9",
        "access_key": "AK",
        "project_id": None,
    }
    assert json.loads(path.read_text())["secret_key"] == "SK-secret"


def test_not_configured_with_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENCBR_ENDPOINT", "OPENCBR_ACCESS_KEY", "OPENCBR_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    result = CliRunner().invoke(app, ["policy", "delete", "x", "--json"], env=env)
    assert result.exit_code == 1
    error = json.loads(result.stdout)
    assert error["error_code"] == "CLI.0001"
    assert "opencbr configure" in error["error_msg"]
