"""CBR policies through the official SDK (`huaweicloudsdkcbr` v1) and the `opencbr policy` CLI on
a real loopback server: create, list, show, update, associate, dissociate, delete, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import CbrClient
from huaweicloudsdkcbr.v1 import model as m
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from typer.testing import CliRunner

from opencbr.cli.main import app
from tests.conftest import LiveServer, TenantFactory, unique
from tests.e2e.sdk import project_client

EVERY_DAY = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU;BYHOUR=14;BYMINUTE=00"


def policy_body(pattern: list[str], **definition: Any) -> m.PolicyCreateReq:
    return m.PolicyCreateReq(
        policy=m.PolicyCreate(
            name=unique("policy"),
            operation_type="backup",
            operation_definition=m.PolicyoODCreate(**definition),
            trigger=m.PolicyTriggerReq(properties=m.PolicyTriggerPropertiesReq(pattern=pattern)),
        )
    )


def create_vault(client: Any) -> str:
    vault = m.VaultCreate(
        name=unique("vault"),
        resources=[],
        billing=m.BillingCreate(
            object_type="disk", protect_type="backup", consistent_level="crash_consistent", size=10
        ),
    )
    body = m.VaultCreateReq(vault=vault)
    vault_id: str = client.create_vault(m.CreateVaultRequest(body=body)).vault.id
    return vault_id


def followers(client: Any, policy_id: str) -> list[str]:
    """Ids of the vaults that follow the policy (ListVault's policy_id filter)."""
    vaults = client.list_vault(m.ListVaultRequest(policy_id=policy_id)).vaults
    return [v.id for v in vaults]


def error_of(call: Any, request: Any) -> tuple[int, str]:
    with pytest.raises(ClientRequestException) as caught:
        call(request)
    return caught.value.status_code, caught.value.error_code


def test_policy_lifecycle_through_the_sdk(server: LiveServer, make_tenant: TenantFactory) -> None:
    owner = project_client(CbrClient, server.url, make_tenant())
    outsider = project_client(CbrClient, server.url, make_tenant())

    created = owner.create_policy(
        m.CreatePolicyRequest(
            body=policy_body([EVERY_DAY], max_backups=5, day_backups=3, timezone="UTC+08:00")
        )
    ).policy
    assert created.enabled is True
    assert created.operation_type == "backup"
    assert created.trigger.type == "time"
    assert created.trigger.properties.pattern == [EVERY_DAY]
    assert created.operation_definition.max_backups == 5
    assert created.operation_definition.day_backups == 3
    assert created.operation_definition.timezone == "UTC+08:00"
    assert created.associated_vaults == []

    shown = owner.show_policy(m.ShowPolicyRequest(policy_id=created.id)).policy
    assert (shown.id, shown.name) == (created.id, created.name)
    listed = owner.list_policies(m.ListPoliciesRequest())
    assert [p.id for p in listed.policies] == [created.id]
    assert listed.count == 1
    assert owner.list_policies(m.ListPoliciesRequest(operation_type="replication")).count == 0

    update = m.PolicyUpdateReq(
        policy=m.PolicyUpdate(
            name="nightly",
            enabled=False,
            operation_definition=m.PolicyoODCreate(retention_duration_days=30),
            trigger=m.PolicyTriggerUpdateReq(
                properties=m.PolicyTriggerPropertiesUpdateReq(
                    pattern=["FREQ=DAILY;INTERVAL=1;BYHOUR=6;BYMINUTE=00"]
                )
            ),
        )
    )
    updated = owner.update_policy(m.UpdatePolicyRequest(policy_id=created.id, body=update)).policy
    assert (updated.name, updated.enabled) == ("nightly", False)
    assert updated.operation_definition.retention_duration_days == 30
    assert updated.operation_definition.max_backups is None
    assert updated.trigger.properties.pattern == ["FREQ=DAILY;INTERVAL=1;BYHOUR=6;BYMINUTE=00"]

    vault_id = create_vault(owner)
    bound = owner.associate_vault_policy(
        m.AssociateVaultPolicyRequest(
            vault_id=vault_id, body=m.VaultAssociate(policy_id=created.id)
        )
    ).associate_policy
    assert (bound.vault_id, bound.policy_id) == (vault_id, created.id)
    assert followers(owner, created.id) == [vault_id]
    by_vault = owner.list_policies(m.ListPoliciesRequest(vault_id=vault_id)).policies
    assert [p.id for p in by_vault] == [created.id]
    assert [v.vault_id for v in by_vault[0].associated_vaults] == [vault_id]

    unbound = owner.disassociate_vault_policy(
        m.DisassociateVaultPolicyRequest(
            vault_id=vault_id, body=m.VaultDissociate(policy_id=created.id)
        )
    ).dissociate_policy
    assert (unbound.vault_id, unbound.policy_id) == (vault_id, created.id)
    assert owner.list_policies(m.ListPoliciesRequest(vault_id=vault_id)).count == 0

    # add_policy_ids is accepted too
    owner.associate_vault_policy(
        m.AssociateVaultPolicyRequest(
            vault_id=vault_id, body=m.VaultAssociate(add_policy_ids=[created.id])
        )
    )
    assert followers(owner, created.id) == [vault_id]

    # an outsider sees neither the policy nor the vault
    assert error_of(outsider.show_policy, m.ShowPolicyRequest(policy_id=created.id)) == (
        404,
        "BackupService.6401",
    )
    assert outsider.list_policies(m.ListPoliciesRequest()).count == 0
    status, _ = error_of(
        outsider.associate_vault_policy,
        m.AssociateVaultPolicyRequest(
            vault_id=vault_id, body=m.VaultAssociate(policy_id=created.id)
        ),
    )
    assert status == 404

    owner.delete_policy(m.DeletePolicyRequest(policy_id=created.id))
    assert error_of(owner.show_policy, m.ShowPolicyRequest(policy_id=created.id)) == (
        404,
        "BackupService.6401",
    )
    assert followers(owner, created.id) == []


@pytest.mark.parametrize(
    ("patterns", "definition"),
    [
        (["FREQ=MONTHLY;BYHOUR=1;BYMINUTE=00"], {}),
        (["FREQ=DAILY;BYHOUR=25;BYMINUTE=00"], {}),
        (["FREQ=DAILY;BYHOUR=1;BYMINUTE=0,30"], {}),
        (["FREQ=WEEKLY;BYHOUR=1"], {}),
        (["FREQ=DAILY;BYHOUR=1;UNTIL=20300101"], {}),
        ([f"FREQ=DAILY;BYHOUR={h % 24};BYMINUTE=00" for h in range(25)], {}),
        ([], {}),
        ([EVERY_DAY], {"day_backups": 3}),
        ([EVERY_DAY], {"max_backups": 0}),
    ],
)
def test_bad_policies_are_refused_with_9900(
    server: LiveServer,
    make_tenant: TenantFactory,
    patterns: list[str],
    definition: dict[str, Any],
) -> None:
    client = project_client(CbrClient, server.url, make_tenant())
    request = m.CreatePolicyRequest(body=policy_body(patterns, **definition))
    assert error_of(client.create_policy, request) == (400, "BackupService.9900")
    assert client.list_policies(m.ListPoliciesRequest()).count == 0


def test_policy_cli(server: LiveServer, make_tenant: TenantFactory, tmp_path: Path) -> None:
    creds = make_tenant()
    vault_id = create_vault(project_client(CbrClient, server.url, creds))
    env = {
        "OPENCBR_ENDPOINT": server.url,
        "OPENCBR_ACCESS_KEY": creds.access_key,
        "OPENCBR_SECRET_KEY": creds.secret_key,
        "OPENCBR_PROJECT_ID": creds.projects["region-1"],
        "XDG_CONFIG_HOME": str(tmp_path),
    }

    def cli(*args: str) -> Any:
        return CliRunner().invoke(app, ["policy", *args], env=env)

    daily = ["--pattern", "FREQ=DAILY;BYHOUR=2"]
    made = cli("create", "--name", "nightly", *daily, "--max-backups", "7", "--json")
    assert made.exit_code == 0, made.output
    policy = json.loads(made.output)
    assert policy["operation_definition"] == {"max_backups": 7}
    bad = cli("create", "--name", "bad", "--pattern", "FREQ=DAILY;BYHOUR=2;BYMINUTE=0,15")
    assert bad.exit_code == 1
    assert "BackupService.9900" in bad.output

    assert cli("associate", vault_id, policy["id"]).exit_code == 0
    listed = json.loads(cli("list", "--vault-id", vault_id, "--json").output)
    assert [p["id"] for p in listed["policies"]] == [policy["id"]]
    assert "Policies" in cli("list").output
    changed = cli("update", policy["id"], "--disable", "--retention-days", "30", "--json")
    assert changed.exit_code == 0, changed.output
    shown = json.loads(cli("show", policy["id"], "--json").output)
    assert shown["enabled"] is False
    assert shown["operation_definition"] == {"retention_duration_days": 30}
    assert cli("dissociate", vault_id, policy["id"]).exit_code == 0
    assert cli("delete", policy["id"]).exit_code == 0
    missing = cli("show", policy["id"])
    assert missing.exit_code == 4
    assert "BackupService.6401" in missing.output
