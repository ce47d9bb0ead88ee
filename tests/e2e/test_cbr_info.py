"""The reporting CBR calls through the SDK: each answers for the caller's own project and
account only (S14), and says truthfully what is not there (no replication, no external
vaults)."""

from __future__ import annotations

from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import CbrClient
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException

from opencbr.core.context import Runtime
from tests.conftest import LiveServer, TenantFactory
from tests.e2e.flows import disk_vault
from tests.e2e.sdk import project_client
from tests.integration.cbr.sharing_fixtures import MiB, party, stored_backup


def _error(call: Any, request: Any) -> tuple[int, str]:
    with pytest.raises(ClientRequestException) as caught:
        call(request)
    return caught.value.status_code, caught.value.error_code


def test_usage_and_metadata_are_the_callers_own(
    runtime: Runtime, server: LiveServer, make_tenant: TenantFactory
) -> None:
    owner_creds, outsider_creds = make_tenant(), make_tenant()
    owner = project_client(CbrClient, server.url, owner_creds)
    outsider = project_client(CbrClient, server.url, outsider_creds)
    vault_id = disk_vault(owner, "v", 10, []).id
    backups = [
        stored_backup(runtime, party(runtime, owner_creds), vault_id, size_bytes=MiB)
        for _ in range(2)
    ]
    usage = owner.show_storage_usage(cbr.ShowStorageUsageRequest())
    assert usage.resource_count == 2
    assert {u.backup_count for u in usage.storage_usage} == {1}
    first = usage.storage_usage[0].resource_id
    one = owner.show_storage_usage(cbr.ShowStorageUsageRequest(resource_id=first, limit=1))
    assert [u.resource_id for u in one.storage_usage] == [first]
    assert owner.show_storage_usage(cbr.ShowStorageUsageRequest(offset=2)).storage_usage == []
    bad = cbr.ShowStorageUsageRequest(limit=0)
    assert _error(owner.show_storage_usage, bad) == (400, "BackupService.9900")

    nothing = outsider.show_storage_usage(cbr.ShowStorageUsageRequest())
    assert (nothing.resource_count, nothing.storage_usage) == (0, [])
    metadata = cbr.ShowMetadataRequest(backup_id=backups[0])
    assert owner.show_metadata(metadata).backup_id == backups[0]
    assert _error(outsider.show_metadata, metadata) == (404, "BackupService.6200")


def test_features_replication_and_external_vaults_say_what_is_there(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    client = project_client(CbrClient, server.url, make_tenant())
    unknown = cbr.ShowFeatureRequest(feature_key="no.such.feature")
    assert _error(client.show_feature, unknown) == (404, "BackupService.9404")
    shown = client.show_feature(cbr.ShowFeatureRequest(feature_key="replication.enable"))
    assert shown.to_json_object() == {"replication.enable": False}
    capabilities = client.show_replication_capabilities(cbr.ShowReplicationCapabilitiesRequest())
    assert all(r.replication_destinations == [] for r in capabilities.regions)
    external = client.list_external_vault(cbr.ListExternalVaultRequest(limit=10))
    assert (external.vaults, external.count) == ([], 0)


def test_another_accounts_domain_and_projects_answer_like_missing_ones(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    mine, theirs = make_tenant(), make_tenant()
    client = project_client(CbrClient, server.url, mine)
    listed = client.list_domain_projects(
        cbr.ListDomainProjectsRequest(domain_name=mine.domain_name)
    ).projects
    assert {p.project_id for p in listed} == set(mine.projects.values())
    foreign = cbr.ListDomainProjectsRequest(domain_name=theirs.domain_name)
    missing = cbr.ListDomainProjectsRequest(domain_name="no-such-account")
    assert _error(client.list_domain_projects, foreign) == _error(
        client.list_domain_projects, missing
    )
    their_project = cbr.ShowDomainRequest(source_project_id=theirs.projects["region-1"])
    no_project = cbr.ShowDomainRequest(source_project_id="f" * 32)
    assert _error(client.show_domain, their_project) == _error(client.show_domain, no_project)
    projects = client.list_projects(cbr.ListProjectsRequest()).projects
    assert {p.id for p in projects} == set(mine.projects.values())
