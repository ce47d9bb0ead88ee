"""UpdateVolume, volume tags, zones, types and quotas through the SDK: the caller's own disks
only (S14), bad input an EVS.0400 that changes nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkevs.v2 import EvsClient
from huaweicloudsdkevs.v2 import model as evs

from opencbr.core.context import Runtime
from opencbr.core.jobs import WorkerPool
from opencbr.evs import recycle
from opencbr.evs.models import Disk
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows
from tests.e2e.flows import create_disk
from tests.e2e.sdk import project_client

GiB = 1 << 30


def _error(call: Any) -> tuple[int, str]:
    with pytest.raises(ClientRequestException) as caught:
        call()
    return caught.value.status_code, caught.value.error_code


def _tag(client: Any, volume_id: str, **tags: str) -> None:
    body = evs.BatchCreateVolumeTagsRequestBody(
        action="create", tags=[evs.Tag(key=k, value=v) for k, v in tags.items()]
    )
    client.batch_create_volume_tags(
        evs.BatchCreateVolumeTagsRequest(volume_id=volume_id, body=body)
    )


def _tags(client: Any, volume_id: str) -> dict[str, str]:
    shown = client.show_volume_tags(evs.ShowVolumeTagsRequest(volume_id=volume_id)).tags
    return {t.key: t.value for t in shown}


def test_disk_settings_and_tags_are_the_owners(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    mine, theirs = make_tenant(), make_tenant()
    client = project_client(EvsClient, server.url, mine)
    outsider = project_client(EvsClient, server.url, theirs)
    disk = create_disk(client, "d")
    _tag(client, disk, **{f"k{i}": "v" for i in range(9)})
    assert _error(lambda: _tag(client, disk, x="1", y="2")) == (400, "EVS.0400")
    assert _error(lambda: _tag(client, disk, **{"k" * 37: "v"})) == (400, "EVS.0400")
    assert len(_tags(client, disk)) == 9
    _tag(client, disk, k0="replaced")
    assert _tags(client, disk)["k0"] == "replaced"

    long_name = evs.UpdateVolumeRequestBody(volume=evs.UpdateVolumeOption(name="n" * 256))
    request = evs.UpdateVolumeRequest(volume_id=disk, body=long_name)
    assert _error(lambda: client.update_volume(request)) == (400, "EVS.0400")
    described = evs.UpdateVolumeRequestBody(volume=evs.UpdateVolumeOption(description="data"))
    answer = client.update_volume(evs.UpdateVolumeRequest(volume_id=disk, body=described))
    assert (answer.name, answer.description) == ("d", "data")

    for call in (
        lambda: outsider.show_volume_tags(evs.ShowVolumeTagsRequest(volume_id=disk)),
        lambda: _tag(outsider, disk, a="b"),
        lambda: outsider.update_volume(evs.UpdateVolumeRequest(volume_id=disk, body=described)),
    ):
        assert _error(call) == (404, "EVS.0404")
    assert outsider.list_volume_tags(evs.ListVolumeTagsRequest()).tags == {}
    foreign = evs.CinderListQuotasRequest(target_project_id=mine.projects["region-1"])
    assert _error(lambda: outsider.cinder_list_quotas(foreign))[0] == 403
    quota = client.cinder_list_quotas(foreign).quota_set
    assert (quota.volumes.in_use, quota.gigabytes.in_use, quota.volumes_sas.in_use) == (1, 1, 1)


def test_a_transfer_needs_its_key_and_only_its_offerer_sees_it(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    mine, theirs = make_tenant(), make_tenant()
    client = project_client(EvsClient, server.url, mine)
    other = project_client(EvsClient, server.url, theirs)
    disk = create_disk(client, "moving")
    option = evs.CreateVolumeTransferOption(volume_id=disk, name="t")
    offered = client.cinder_create_volume_transfer(
        evs.CinderCreateVolumeTransferRequest(
            body=evs.CinderCreateVolumeTransferRequestBody(transfer=option)
        )
    ).transfer
    shown = client.show_volume(evs.ShowVolumeRequest(volume_id=disk)).volume
    assert shown.status == "awaiting-transfer"
    again = evs.CinderCreateVolumeTransferRequest(
        body=evs.CinderCreateVolumeTransferRequestBody(transfer=option)
    )
    assert _error(lambda: client.cinder_create_volume_transfer(again)) == (400, "EVS.0409")

    def accept(who: Any, key: str) -> Any:
        body = evs.CinderAcceptVolumeTransferRequestBody(
            accept=evs.CinderAcceptVolumeTransferOption(auth_key=key)
        )
        return who.cinder_accept_volume_transfer(
            evs.CinderAcceptVolumeTransferRequest(transfer_id=offered.id, body=body)
        )

    assert _error(lambda: accept(other, "0" * 16)) == (404, "EVS.0406")
    show = evs.CinderShowVolumeTransferRequest(transfer_id=offered.id)
    assert _error(lambda: other.cinder_show_volume_transfer(show)) == (404, "EVS.0406")
    withdraw = evs.CinderDeleteVolumeTransferRequest(transfer_id=offered.id)
    assert _error(lambda: other.cinder_delete_volume_transfer(withdraw)) == (404, "EVS.0406")
    assert (
        other.cinder_list_volume_transfers(evs.CinderListVolumeTransfersRequest()).transfers == []
    )
    assert _error(lambda: accept(client, offered.auth_key)) == (400, "EVS.0422")  # own disk

    accept(other, offered.auth_key)
    assert _error(lambda: client.show_volume(evs.ShowVolumeRequest(volume_id=disk))) == (
        404,
        "EVS.0404",
    )
    assert other.show_volume(evs.ShowVolumeRequest(volume_id=disk)).volume.status == "available"
    assert _error(lambda: accept(other, offered.auth_key)) == (404, "EVS.0406")  # used up


def _extend(client: Any, volume_id: str, new_size: int) -> Any:
    body = evs.ResizeVolumeRequestBody(os_extend=evs.OsExtend(new_size=new_size))
    return client.resize_volume(evs.ResizeVolumeRequest(volume_id=volume_id, body=body))


def test_a_grown_disk_keeps_its_data_and_its_next_incremental_backup_is_whole(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    mine = make_tenant()
    clients = flows.tenant_clients(server.url, mine)
    client, project = clients.evs, clients.project
    disk = create_disk(client, "growing")
    flows.write(clients.data, project, disk, 0, b"A" * 4096)
    vault = flows.disk_vault(clients.cbr, "v", 10, [disk])
    assert flows.back_up(clients.cbr, vault.id, "full").status == "available"

    assert _error(lambda: _extend(client, disk, 1)) == (400, "EVS.0400")  # no shrinking
    outsider = project_client(EvsClient, server.url, make_tenant())
    assert _error(lambda: _extend(outsider, disk, 2)) == (404, "EVS.0404")
    assert client.show_volume(evs.ShowVolumeRequest(volume_id=disk)).volume.size == 1

    job = client.show_job(evs.ShowJobRequest(job_id=_extend(client, disk, 2).job_id))
    flows.wait_for(
        "extend",
        lambda: client.show_job(evs.ShowJobRequest(job_id=job.job_id)),
        lambda j: j.status in ("SUCCESS", "FAIL"),
    )
    shown = client.show_volume(evs.ShowVolumeRequest(volume_id=disk)).volume
    assert (shown.size, shown.status) == (2, "available")
    flows.write(clients.data, project, disk, GiB + 8192, b"B" * 4096)

    backup = flows.back_up(clients.cbr, vault.id, "after-growth")
    assert backup.status == "available"
    shown_backup = clients.cbr.show_backup(cbr.ShowBackupRequest(backup_id=backup.id)).backup
    assert (shown_backup.incremental, shown_backup.resource_size) == (True, 2)
    copy, _ = flows.disk_from_backup(client, backup.id, "copy")
    assert flows.read(clients.data, project, copy, 0, 4096) == b"A" * 4096
    assert flows.read(clients.data, project, copy, GiB, 16384) == bytes(8192) + b"B" * 4096 + bytes(
        4096
    )


def _snapshot(client: Any, volume_id: str, name: str, **extra: Any) -> Any:
    option = evs.CreateSnapshotOption(volume_id=volume_id, name=name, **extra)
    body = evs.CreateSnapshotRequestBody(snapshot=option)
    created = client.create_snapshot(evs.CreateSnapshotRequest(body=body)).snapshot
    return flows.wait_for(
        "snapshot",
        lambda: client.show_snapshot(evs.ShowSnapshotRequest(snapshot_id=created.id)).snapshot,
        lambda s: s.status in ("available", "error"),
    )


def _rollback(client: Any, snapshot_id: str, volume_id: str, name: str | None = None) -> Any:
    option = evs.RollbackSnapshotOption(volume_id=volume_id, name=name)
    body = evs.RollbackSnapshotRequestBody(rollback=option)
    return client.rollback_snapshot(
        evs.RollbackSnapshotRequest(snapshot_id=snapshot_id, body=body)
    ).rollback


def test_snapshots_keep_a_point_in_time_and_roll_back_onto_their_disk(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    clients = flows.tenant_clients(server.url, make_tenant())
    client, project = clients.evs, clients.project
    disk = create_disk(client, "snapped")
    flows.write(clients.data, project, disk, 4096, b"1" * 8192)
    first = _snapshot(client, disk, "first", metadata={"why": "test"})
    assert (first.status, first.size, first.volume_id) == ("available", 1, disk)
    flows.write(clients.data, project, disk, 4096, b"2" * 4096)
    flows.write(clients.data, project, disk, 1 << 20, b"3" * 4096)

    outsider = project_client(EvsClient, server.url, make_tenant())
    show = evs.ShowSnapshotRequest(snapshot_id=first.id)
    assert _error(lambda: outsider.show_snapshot(show)) == (404, "EVS.0407")
    assert _error(lambda: _rollback(outsider, first.id, disk)) == (404, "EVS.0407")
    assert _error(lambda: _rollback(client, first.id, str(uuid.uuid4()))) == (400, "EVS.0400")
    assert _error(lambda: _snapshot(client, str(uuid.uuid4()), "x")) == (404, "EVS.0404")
    long = evs.UpdateSnapshotRequestBody(snapshot=evs.UpdateSnapshotOption(name="n" * 256))
    update = evs.UpdateSnapshotRequest(snapshot_id=first.id, body=long)
    assert _error(lambda: client.update_snapshot(update)) == (400, "EVS.0400")
    delete_disk = evs.DeleteVolumeRequest(volume_id=disk)
    assert _error(lambda: client.delete_volume(delete_disk)) == (400, "EVS.0423")

    renamed = evs.UpdateSnapshotRequestBody(snapshot=evs.UpdateSnapshotOption(name="kept"))
    client.update_snapshot(evs.UpdateSnapshotRequest(snapshot_id=first.id, body=renamed))
    listed = client.list_snapshots(evs.ListSnapshotsRequest(volume_id=disk))
    assert (listed.count, [s.name for s in listed.snapshots]) == (1, ["kept"])
    assert outsider.list_snapshots(evs.ListSnapshotsRequest()).count == 0
    quota = client.cinder_list_quotas(evs.CinderListQuotasRequest(target_project_id=project))
    assert (quota.quota_set.snapshots.in_use, quota.quota_set.snapshots_sas.in_use) == (1, 1)

    assert _rollback(client, first.id, disk, name="rolled").volume_id == disk
    flows.wait_for("rollback", lambda: flows.disk_status(client, disk), lambda s: s == "available")
    assert client.show_volume(evs.ShowVolumeRequest(volume_id=disk)).volume.name == "rolled"
    assert flows.read(clients.data, project, disk, 4096, 8192) == b"1" * 8192
    assert flows.read(clients.data, project, disk, 1 << 20, 4096) == bytes(4096)

    client.delete_snapshot(evs.DeleteSnapshotRequest(snapshot_id=first.id))
    assert _error(lambda: client.show_snapshot(show)) == (404, "EVS.0407")

    _attach_to_a_server(clients, disk)
    assert _error(lambda: _snapshot(client, disk, "no force")) == (400, "EVS.0400")
    forced = _snapshot(client, disk, "forced", force=True)
    assert _error(lambda: _rollback(client, forced.id, disk)) == (400, "EVS.0409")
    _extend(client, disk, 2)  # an attached disk may grow
    flows.wait_for("extend", lambda: flows.disk_status(client, disk), lambda s: s == "in-use")
    assert client.show_volume(evs.ShowVolumeRequest(volume_id=disk)).volume.size == 2


def _attach_to_a_server(clients: flows.TenantClients, disk: str) -> None:
    body = {
        "server": {
            "name": "vm",
            "availability_zone": "az1",
            "system_disk": {"size": 1},
            "data_disks": [{"volume_id": disk}],
        }
    }
    path = f"/v1/{clients.project}/servers"
    made = clients.data.request("POST", path, body)["server"]
    flows.wait_for(
        "server",
        lambda: clients.data.request("GET", f"{path}/{made['id']}")["server"]["status"],
        lambda status: status != "BUILD",
    )
    assert flows.disk_status(clients.evs, disk) == "in-use"


def _age(runtime: Runtime, disk_id: str, **moved: timedelta) -> None:
    """Move a disk's creation (or purge) time into the past, as days passing would."""
    with runtime.database.unit_of_work() as session:
        disk = session.get(Disk, disk_id)
        assert disk is not None
        for column, by in moved.items():
            setattr(disk, column, getattr(disk, column) - by)


def _in_bin(client: Any, disk_id: str) -> Any:
    return client.show_volume_in_recycle(evs.ShowVolumeInRecycleRequest(volume_id=disk_id)).volume


def test_the_recycle_bin_keeps_deleted_disks_when_its_policy_is_on(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool, runtime: Runtime
) -> None:
    clients = flows.tenant_clients(server.url, make_tenant())
    client, project = clients.evs, clients.project
    policy = client.show_recycle_policy(evs.ShowRecyclePolicyRequest())
    assert (policy.switch, policy.threshold_time, policy.keep_time) == (False, 7, 7)

    def set_policy(**given: Any) -> Any:
        body = evs.ModifyRecycleBinPolicyRequestBody(**given)
        return client.update_recycle_policy(evs.UpdateRecyclePolicyRequest(body=body))

    assert _error(lambda: set_policy(switch=True, keep_time=0)) == (400, "EVS.0400")
    assert client.show_recycle_policy(evs.ShowRecyclePolicyRequest()).switch is False
    set_policy(switch=True, threshold_time=1, keep_time=3)

    fresh, old = create_disk(client, "fresh"), create_disk(client, "old")
    flows.write(clients.data, project, old, 0, b"K" * 4096)
    _age(runtime, old, created_at=timedelta(days=2))
    for disk in (fresh, old):
        job = client.delete_volume(evs.DeleteVolumeRequest(volume_id=disk)).job_id
        flows.wait_for(
            "delete",
            lambda j=job: client.show_job(evs.ShowJobRequest(job_id=j)).status,
            lambda s: s == "SUCCESS",
        )
    assert _error(lambda: _in_bin(client, fresh)) == (404, "EVS.0408")  # younger than 1 day
    assert _error(lambda: client.show_volume(evs.ShowVolumeRequest(volume_id=old))) == (
        404,
        "EVS.0404",
    )
    binned = _in_bin(client, old)
    assert (binned.name, binned.size, binned.status) == ("old", 1, "recycled")
    assert binned.plan_delete_at > binned.pre_deleted_at
    listed = client.list_volumes_in_recycle(evs.ListVolumesInRecycleRequest())
    assert (listed.count, [v.id for v in listed.volumes]) == (1, [old])
    assert old not in {v.id for v in client.list_volumes(evs.ListVolumesRequest()).volumes}
    outsider = project_client(EvsClient, server.url, make_tenant())
    assert _error(lambda: _in_bin(outsider, old)) == (404, "EVS.0408")
    revert = evs.RevertVolumeInRecycleRequest(volume_id=old)
    assert _error(lambda: outsider.revert_volume_in_recycle(revert)) == (404, "EVS.0408")

    client.revert_volume_in_recycle(revert)
    assert flows.disk_status(client, old) == "available"
    assert flows.read(clients.data, project, old, 0, 4096) == b"K" * 4096
    assert _error(lambda: client.revert_volume_in_recycle(revert)) == (404, "EVS.0408")

    client.delete_volume(evs.DeleteVolumeRequest(volume_id=old))
    _age(runtime, old, purge_at=timedelta(days=4))  # its keep time is over
    with runtime.database.unit_of_work() as session:
        assert recycle.purge_recycled(session) == [old]
    flows.wait_for(
        "purge",
        lambda: client.list_volumes_in_recycle(evs.ListVolumesInRecycleRequest()).count,
        lambda n: n == 0,
    )

    def record() -> Disk | None:
        with runtime.database.unit_of_work() as session:
            return session.get(Disk, old)

    flows.wait_for("the purged disk's record to go", record, lambda found: found is None)
