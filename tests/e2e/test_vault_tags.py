"""Vault tags through the SDK: set, replace, remove, query by tag; another project's vault
answers like a missing one; bad input is a 400 that changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import CbrClient
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException

from tests.conftest import LiveServer, TenantFactory
from tests.e2e.flows import disk_vault
from tests.e2e.sdk import project_client


def _error(call: Any, request: Any) -> tuple[int, str]:
    with pytest.raises(ClientRequestException) as caught:
        call(request)
    return caught.value.status_code, caught.value.error_code


def _batch(client: Any, vault_id: str, action: str, **tags: str) -> None:
    body = cbr.BulkCreateAndDeleteVaultTagsReq(
        action=action, tags=[cbr.BulkCreateAndDeleteTags(key=k, value=v) for k, v in tags.items()]
    )
    client.batch_create_and_delete_vault_tags(
        cbr.BatchCreateAndDeleteVaultTagsRequest(vault_id=vault_id, body=body)
    )


def _tags(client: Any, vault_id: str) -> dict[str, str]:
    shown = client.show_vault_tag(cbr.ShowVaultTagRequest(vault_id=vault_id)).tags
    return {t.key: t.value for t in shown}


def _find(client: Any, **conditions: Any) -> set[str]:
    query = cbr.VaultResourceInstancesReq(action="filter", **conditions)
    found = client.show_vault_resource_instances(cbr.ShowVaultResourceInstancesRequest(body=query))
    assert found.total_count == len(found.resources)
    count = cbr.VaultResourceInstancesReq(action="count", **conditions)
    counted = client.show_vault_resource_instances(
        cbr.ShowVaultResourceInstancesRequest(body=count)
    )
    assert counted.total_count == found.total_count
    return {r.resource_name for r in found.resources}


def test_tags_are_set_replaced_removed_and_queried(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    client = project_client(CbrClient, server.url, make_tenant())
    prod, test, bare = (disk_vault(client, name, 10, []).id for name in ("prod", "test", "bare"))
    _batch(client, prod, "create", env="prod", team="a")
    _batch(client, test, "create", env="test", team="a")
    _batch(client, test, "create", env="staging")  # a key's value is replaced
    assert _tags(client, test) == {"env": "staging", "team": "a"}
    _batch(client, test, "delete", team="b")  # another value: kept
    assert _tags(client, test) == {"env": "staging", "team": "a"}
    _batch(client, test, "delete", team="")  # no value: whatever it is
    assert _tags(client, test) == {"env": "staging"}

    def req(**tags: list[str]) -> list[Any]:
        return [cbr.TagsReq(key=k, values=v) for k, v in tags.items()]

    assert _find(client, tags=req(env=["prod", "staging"])) == {"prod", "test"}
    assert _find(client, tags=req(env=[], team=[])) == {"prod"}
    assert _find(client, tags_any=req(team=["a"], env=["staging"])) == {"prod", "test"}
    assert _find(client, not_tags=req(env=["prod"])) == {"test", "bare"}
    assert _find(client, not_tags_any=req(team=[], env=["staging"])) == {"bare"}
    assert _find(client, without_any_tag=True) == {"bare"}
    assert _find(client, matches=[cbr.Match(key="resource_name", value="es")]) == {"test"}
    project = client.show_vault_project_tag(cbr.ShowVaultProjectTagRequest()).tags
    assert {t.key: sorted(t.values) for t in project} == {
        "env": ["prod", "staging"],
        "team": ["a"],
    }

    client.delete_vault_tag(cbr.DeleteVaultTagRequest(vault_id=prod, key="team"))
    assert _tags(client, prod) == {"env": "prod"}
    missing = cbr.DeleteVaultTagRequest(vault_id=prod, key="team")
    assert _error(client.delete_vault_tag, missing) == (404, "BackupService.6160")
    # a key with no values listed matches any value, never a vault without the key
    assert bare not in _find(client, tags=req(env=[]))


def test_bad_tags_are_refused_and_change_nothing(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    client = project_client(CbrClient, server.url, make_tenant())
    vault_id = disk_vault(client, "v", 10, []).id
    _batch(client, vault_id, "create", **{f"k{i}": "v" for i in range(9)})
    too_many = cbr.BulkCreateAndDeleteVaultTagsReq(
        action="create",
        tags=[cbr.BulkCreateAndDeleteTags(key=k, value="v") for k in ("x", "y")],
    )
    request = cbr.BatchCreateAndDeleteVaultTagsRequest(vault_id=vault_id, body=too_many)
    assert _error(client.batch_create_and_delete_vault_tags, request) == (400, "BackupService.9900")
    long_key = cbr.VaultTagsCreateReq(tag=cbr.TagCreate(key="k" * 129, value="v"))
    request = cbr.CreateVaultTagsRequest(vault_id=vault_id, body=long_key)
    assert _error(client.create_vault_tags, request) == (400, "BackupService.9900")
    bad_action = cbr.BulkCreateAndDeleteVaultTagsReq(
        action="replace", tags=[cbr.BulkCreateAndDeleteTags(key="a", value="b")]
    )
    request = cbr.BatchCreateAndDeleteVaultTagsRequest(vault_id=vault_id, body=bad_action)
    assert _error(client.batch_create_and_delete_vault_tags, request) == (400, "BackupService.9900")
    assert _tags(client, vault_id) == {f"k{i}": "v" for i in range(9)}
    for limit in ("\u00b2", "x", "0", "1001"):  # "²" is a digit to str.isdigit, not to int()
        query = cbr.VaultResourceInstancesReq(action="filter", limit=limit)
        request = cbr.ShowVaultResourceInstancesRequest(body=query)
        assert _error(client.show_vault_resource_instances, request) == (
            400,
            "BackupService.9900",
        )


def test_another_projects_vault_answers_like_a_missing_one(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    owner = project_client(CbrClient, server.url, make_tenant())
    outsider = project_client(CbrClient, server.url, make_tenant())
    vault_id = disk_vault(owner, "v", 10, []).id
    _batch(owner, vault_id, "create", secret="yes")
    tag = cbr.VaultTagsCreateReq(tag=cbr.TagCreate(key="a", value="b"))
    calls = [
        (outsider.show_vault_tag, cbr.ShowVaultTagRequest(vault_id=vault_id)),
        (outsider.create_vault_tags, cbr.CreateVaultTagsRequest(vault_id=vault_id, body=tag)),
        (outsider.delete_vault_tag, cbr.DeleteVaultTagRequest(vault_id=vault_id, key="secret")),
    ]
    for call, request in calls:
        assert _error(call, request) == (404, "BackupService.6105")
    assert outsider.show_vault_project_tag(cbr.ShowVaultProjectTagRequest()).tags == []
    assert _find(outsider) == set()
    assert _tags(owner, vault_id) == {"secret": "yes"}
