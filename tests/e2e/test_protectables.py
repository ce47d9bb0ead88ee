"""Protectable resources through the SDK: the caller's disks and servers, whether each can be
backed up and which vault protects it; another project's resources are not found (S14)."""

from __future__ import annotations

from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkevs.v2 import model as evs

from opencbr.core.jobs import WorkerPool
from tests.conftest import LiveServer, TenantFactory
from tests.e2e.flows import create_disk, disk_vault, tenant_clients, wait_for


def _error(call: Any, request: Any) -> tuple[int, str]:
    with pytest.raises(ClientRequestException) as caught:
        call(request)
    return caught.value.status_code, caught.value.error_code


def test_disks_and_servers_with_their_vaults(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    mine = tenant_clients(server.url, make_tenant())
    other = tenant_clients(server.url, make_tenant())
    loose, kept = create_disk(mine.evs, "loose"), create_disk(mine.evs, "kept")
    vault_id = disk_vault(mine.cbr, "v", 10, [kept]).id
    body = {"server": {"name": "web", "system_disk": {"size": 1}, "data_disks": [{"size": 2}]}}
    created = mine.data.request("POST", f"/v1/{mine.project}/servers", body)
    wait_for(
        "server",
        lambda: mine.evs.show_job(evs.ShowJobRequest(job_id=created["job_id"])).status,
        lambda status: status in ("SUCCESS", "FAIL"),
    )
    server_id = created["server"]["id"]

    disks = mine.cbr.list_protectable(cbr.ListProtectableRequest(protectable_type="disk"))
    by_id = {p.id: p for p in disks.instances}
    assert {loose, kept} <= set(by_id)
    assert by_id[loose].protectable.result is True
    assert by_id[loose].protectable.vault is None
    assert by_id[kept].protectable.vault.id == vault_id
    assert by_id[kept].type == "OS::Cinder::Volume"
    named = cbr.ListProtectableRequest(protectable_type="disk", name="loo")
    assert [p.id for p in mine.cbr.list_protectable(named).instances] == [loose]
    of_server = cbr.ListProtectableRequest(protectable_type="disk", server_id=server_id)
    assert len(mine.cbr.list_protectable(of_server).instances) == 2

    shown = mine.cbr.show_protectable(
        cbr.ShowProtectableRequest(protectable_type="server", instance_id=server_id)
    ).instance
    assert (shown.type, shown.size, len(shown.children)) == ("OS::Nova::Server", 3, 2)
    assert shown.protectable.vault is None

    for kind, instance in (("disk", loose), ("server", server_id)):
        request = cbr.ShowProtectableRequest(protectable_type=kind, instance_id=instance)
        assert _error(other.cbr.show_protectable, request) == (404, "BackupService.6302")
    theirs = other.cbr.list_protectable(cbr.ListProtectableRequest(protectable_type="disk"))
    assert theirs.instances == []
    bad = cbr.ListProtectableRequest(protectable_type="database")
    assert _error(mine.cbr.list_protectable, bad) == (400, "BackupService.9900")
