"""`opencbr share` and `opencbr shared-with-me` against a live server (stored backup records;
data plane not involved)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from opencbr.cli.main import app
from opencbr.core.context import Runtime
from tests.conftest import LiveServer, TenantFactory
from tests.integration.cbr.sharing_fixtures import (
    MiB,
    Party,
    make_vault,
    party,
    stored_backup,
    vault_row,
)


def _cli(server: LiveServer, who: Party, tmp_path: Path, *args: str) -> Any:
    env = {
        "OPENCBR_ENDPOINT": server.url,
        "OPENCBR_ACCESS_KEY": who.creds.access_key,
        "OPENCBR_SECRET_KEY": who.creds.secret_key,
        "OPENCBR_PROJECT_ID": who.project_id,
        "XDG_CONFIG_HOME": str(tmp_path),  # no saved profile leaks in
    }
    return CliRunner().invoke(app, list(args), env=env)


@pytest.mark.slow
def test_cli_share_accept_reject_cancel(
    runtime: Runtime, server: LiveServer, make_tenant: TenantFactory, tmp_path: Path
) -> None:
    owner, recipient = party(runtime, make_tenant()), party(runtime, make_tenant())
    backup_id = stored_backup(runtime, owner, make_vault(runtime, owner), size_bytes=300 * MiB)
    vault_id = make_vault(runtime, recipient)

    def cli(who: Party, *args: str) -> Any:
        return _cli(server, who, tmp_path, *args)

    added = cli(owner, "share", "add", backup_id, "--project", recipient.project_id, "--json")
    assert added.exit_code == 0, added.output
    assert [m["status"] for m in json.loads(added.output)] == ["pending"]
    again = cli(owner, "share", "add", backup_id, "-p", recipient.project_id)
    assert again.exit_code == 1
    assert "BackupService.6703" in again.output

    listed = cli(recipient, "shared-with-me", "list", "--status", "pending", "--json")
    assert [b["id"] for b in json.loads(listed.output)] == [backup_id]
    table = cli(recipient, "shared-with-me", "list")
    assert "Shared with me" in table.output
    assert "pending" in table.output  # at the runner's 80 columns, the id and status stay

    accepted = cli(
        recipient, "shared-with-me", "accept", backup_id, "--vault", vault_id, "--auto-bind"
    )
    assert accepted.exit_code == 0, accepted.output
    assert "accepted" in accepted.output
    vault = vault_row(runtime, vault_id)
    assert (vault.used_bytes, vault.auto_bind) == (300 * MiB, True)

    members = json.loads(cli(owner, "share", "list", backup_id, "--json").output)
    assert [(m["dest_project_id"], m["status"]) for m in members] == [
        (recipient.project_id, "accepted")
    ]
    assert "Members of" in cli(owner, "share", "list", backup_id).output

    rejected = cli(recipient, "shared-with-me", "reject", backup_id, "--json")
    assert json.loads(rejected.output)["status"] == "rejected"
    assert vault_row(runtime, vault_id).used_bytes == 0

    refused = cli(recipient, "share", "cancel", backup_id, recipient.project_id)
    assert refused.exit_code == 1
    assert "BackupService.6707" in refused.output
    cancelled = cli(owner, "share", "cancel", backup_id, recipient.project_id)
    assert cancelled.exit_code == 0, cancelled.output
    assert json.loads(cli(recipient, "shared-with-me", "list", "--json").output) == []
    missing = cli(owner, "share", "cancel", backup_id, recipient.project_id)
    assert missing.exit_code == 4
    assert "BackupService.6705" in missing.output
