"""The coverage walk: every public method of the vendor's CBR, EVS and KMS SDK clients,
called through the unmodified SDK against a live server, is either served (a 2xx the SDK
parses) or listed as not supported and answers APIGW.0101 (`tests/e2e/api_coverage.py`).

Each walk calls the served methods of one client in an order that builds what the next call
needs, records which it called, and ends by checking that it called every served method.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import CbrClient
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkevs.v2 import EvsClient
from huaweicloudsdkevs.v2 import model as evs
from huaweicloudsdkkms.v2 import KmsClient
from huaweicloudsdkkms.v2 import model as kms

from opencbr.api.runtime import build_runtime, start_workers
from opencbr.core.context import Runtime
from opencbr.core.settings import Settings
from opencbr.evs.models import Disk
from opencbr.iam import service as iam
from opencbr.iam.service import TenantCredentials
from tests.conftest import DATABASES, ROOT_KEY, LiveServer, unique
from tests.e2e import api_coverage
from tests.e2e.flows import create_disk, disk_status, wait_for
from tests.e2e.sdk import project_client

# SDK model fields an answer may leave out, and why (each a pattern of the dotted field path).
NOT_FILLED = (
    r"^(orders|retCode|errText|error_code|order_id)$",  # yearly/monthly orders: no billing
    r"operation_definition\.",  # a policy answers with the rules it was given
    r"operation_logs?(\[\])?\.extra_info\.",  # a log carries the details of its own type
    r"resources\[\]\.extra_info\.(ex|in)clude_volumes$",  # given only when the caller set it
    r"volumes?(\[\])?\.(consistencygroup_id|os-volume-replication:extended_status"
    r"|os-vol-mig-status-attr:\w+|dedicated_storage_\w+|serial_number|iops|throughput)$",
    r"^entities\.sub_jobs$",  # a disk job has no sub-jobs
    r"protectable\.vault\.(updated_at|version)$",  # no update time kept; version undocumented
    r"metadata\.(__system__cmkid|hw:passthrough|orderID)$",  # encrypted/SCSI/prepaid only
)
DOC = Path(__file__).resolve().parents[2] / "docs" / "api-coverage.md"
SERVICES = tuple(api_coverage.CLIENTS)
CLIENT_CLASSES = {"cbr": CbrClient, "evs": EvsClient, "kms": KmsClient}


@dataclass
class Tenant:
    creds: TenantCredentials
    clients: dict[str, Any]

    @property
    def project_id(self) -> str:
        return self.creds.projects["region-1"]

    @property
    def domain_id(self) -> str:
        return self.creds.domain_id


@dataclass
class Walk:
    """Calls SDK methods, asserting each answers 2xx, and remembers which it called."""

    owner: Tenant
    other: Tenant
    called: set[str] = field(default_factory=set)

    def __call__(self, service: str, name: str, request: Any, as_other: bool = False) -> Any:
        tenant = self.other if as_other else self.owner
        response = getattr(tenant.clients[service], name)(request)
        assert 200 <= response.status_code < 300, f"{service}.{name}: {response.status_code}"
        self.called.add(name)
        if response.raw_content:
            gaps = api_coverage.unfilled(response, response.to_json_object())
            unexplained = [g for g in gaps if not any(re.search(p, g) for p in NOT_FILLED)]
            assert unexplained == [], f"{service}.{name} leaves SDK model fields out"
        return response

    def check_complete(self, service: str) -> None:
        served = {m.name for m in api_coverage.implemented(service)}
        assert served - self.called == set(), "served methods the walk did not call"
        assert self.called - served == set(), "called methods that are listed as not supported"


@dataclass
class World:
    server: LiveServer
    owner: Tenant
    other: Tenant
    runtime: Runtime


@pytest.fixture(scope="module", params=DATABASES)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("coverage")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'coverage.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    runtime = build_runtime(Settings(data_dir=tmp / "data", database_url=url, root_key=ROOT_KEY))
    workers = start_workers(runtime, threads=2)
    workers.poll_seconds = 0.05
    try:
        with LiveServer(runtime) as server:

            def tenant() -> Tenant:
                with runtime.database.unit_of_work() as session:
                    creds = iam.create_tenant(
                        session,
                        runtime.root_key,
                        runtime.settings.regions,
                        unique("cov"),
                        ["region-1", "region-2"],
                    )
                clients = {
                    s: project_client(CLIENT_CLASSES[s], server.url, creds) for s in SERVICES
                }
                return Tenant(creds, clients)

            yield World(server, tenant(), tenant(), runtime)
    finally:
        workers.stop()
        runtime.database.dispose()


def test_the_coverage_page_is_generated_from_the_lists() -> None:
    hint = "regenerate: uv run python -m tests.e2e.api_coverage > docs/api-coverage.md"
    assert DOC.read_text() == api_coverage.markdown(), hint


def test_every_listed_operation_is_a_method_of_the_sdk() -> None:
    names = {(m.service, m.name): m for s in SERVICES for m in api_coverage.sdk_methods(s)}
    for operation in api_coverage.not_supported_operations():
        matching = [m for (_, name), m in names.items() if name == operation.sdk_method]
        assert matching, f"{operation.sdk_method} is no SDK method"
        assert any((m.method, m.path) == (operation.method, operation.path) for m in matching), (
            f"{operation.sdk_method}: the SDK sends another method or path"
        )


@pytest.mark.parametrize("service", SERVICES)
def test_each_not_supported_method_answers_apigw_0101(world: World, service: str) -> None:
    client = world.owner.clients[service]
    for operation in api_coverage.not_supported(service).values():
        method = next(
            m for m in api_coverage.sdk_methods(service) if m.name == operation.sdk_method
        )
        with pytest.raises(ClientRequestException) as refused:
            getattr(client, method.name)(method.empty_request())
        answer = (refused.value.status_code, refused.value.error_code)
        assert answer == (404, "APIGW.0101"), f"{method.name}: {answer}"


# --- CBR ----------------------------------------------------------------------------------


def _policy_body() -> cbr.PolicyCreateReq:
    return cbr.PolicyCreateReq(
        policy=cbr.PolicyCreate(
            name=unique("policy"),
            operation_type="backup",
            operation_definition=cbr.PolicyoODCreate(retention_duration_days=7),
            trigger=cbr.PolicyTriggerReq(
                properties=cbr.PolicyTriggerPropertiesReq(
                    pattern=["FREQ=DAILY;INTERVAL=1;BYHOUR=3;BYMINUTE=00"]
                )
            ),
        )
    )


def _disk_vault(walk: Walk, name: str, disks: list[str], as_other: bool = False) -> Any:
    vault = cbr.VaultCreate(
        name=name,
        resources=[cbr.ResourceCreate(id=d, type="OS::Cinder::Volume") for d in disks],
        billing=cbr.BillingCreate(
            object_type="disk", protect_type="backup", consistent_level="crash_consistent", size=10
        ),
    )
    request = cbr.CreateVaultRequest(body=cbr.VaultCreateReq(vault=vault))
    return walk("cbr", "create_vault", request, as_other).vault


def _walk_vaults(walk: Walk, disk: str, spare: str) -> Any:
    vault = _disk_vault(walk, unique("vault"), [disk])
    walk("cbr", "show_vault", cbr.ShowVaultRequest(vault_id=vault.id))
    walk("cbr", "list_vault", cbr.ListVaultRequest(limit=10))
    update = cbr.VaultUpdateReq(vault=cbr.VaultUpdate(name=unique("renamed")))
    walk("cbr", "update_vault", cbr.UpdateVaultRequest(vault_id=vault.id, body=update))
    walk("cbr", "show_summary", cbr.ShowSummaryRequest())
    add = cbr.VaultAddResourceReq(
        resources=[cbr.ResourceCreate(id=spare, type="OS::Cinder::Volume")]
    )
    walk("cbr", "add_vault_resource", cbr.AddVaultResourceRequest(vault_id=vault.id, body=add))
    for action in ("suspend", "unsuspend"):
        body = cbr.VaultSetResourceReq(resource_ids=[spare], action=action)
        set_request = cbr.SetVaultResourceRequest(vault_id=vault.id, body=body)
        assert walk("cbr", "set_vault_resource", set_request).set_resource_ids == [spare]
    other = _disk_vault(walk, unique("other"), [])
    migrate = cbr.VaultMigrateResourceReq(destination_vault_id=other.id, resource_ids=[spare])
    moved = walk(
        "cbr",
        "migrate_vault_resource",
        cbr.MigrateVaultResourceRequest(vault_id=vault.id, body=migrate),
    )
    assert moved.migrated_resources == [spare]
    remove = cbr.VaultRemoveResourceReq(resource_ids=[spare])
    walk(
        "cbr",
        "remove_vault_resource",
        cbr.RemoveVaultResourceRequest(vault_id=other.id, body=remove),
    )
    batch = cbr.BatchUpdateVaultRequestBody(vault=cbr.VaultBatchUpdate(threshold=90))
    updated = walk("cbr", "batch_update_vault", cbr.BatchUpdateVaultRequest(body=batch))
    assert {vault.id, other.id} <= set(updated.updated_vaults_id)
    return vault


def _walk_policies(walk: Walk, vault_id: str) -> None:
    policy = walk("cbr", "create_policy", cbr.CreatePolicyRequest(body=_policy_body())).policy
    walk("cbr", "show_policy", cbr.ShowPolicyRequest(policy_id=policy.id))
    walk("cbr", "list_policies", cbr.ListPoliciesRequest())
    update = cbr.PolicyUpdateReq(policy=cbr.PolicyUpdate(name=unique("policy")))
    walk("cbr", "update_policy", cbr.UpdatePolicyRequest(policy_id=policy.id, body=update))
    associate = cbr.VaultAssociate(policy_id=policy.id)
    walk(
        "cbr",
        "associate_vault_policy",
        cbr.AssociateVaultPolicyRequest(vault_id=vault_id, body=associate),
    )
    dissociate = cbr.VaultDissociate(policy_id=policy.id)
    walk(
        "cbr",
        "disassociate_vault_policy",
        cbr.DisassociateVaultPolicyRequest(vault_id=vault_id, body=dissociate),
    )
    walk("cbr", "delete_policy", cbr.DeletePolicyRequest(policy_id=policy.id))


def _walk_backups(walk: Walk, vault_id: str, disk: str) -> Any:
    checkpoint_body = cbr.VaultBackupReq(
        checkpoint=cbr.VaultBackup(vault_id=vault_id, parameters=cbr.CheckpointParam(name="cov"))
    )
    checkpoint = walk("cbr", "create_checkpoint", cbr.CreateCheckpointRequest(body=checkpoint_body))
    walk(
        "cbr", "show_checkpoint", cbr.ShowCheckpointRequest(checkpoint_id=checkpoint.checkpoint.id)
    )
    backup = wait_for(
        "backup",
        lambda: (
            walk(
                "cbr",
                "list_backups",
                cbr.ListBackupsRequest(checkpoint_id=checkpoint.checkpoint.id),
            ).backups
        ),
        lambda found: len(found) == 1 and found[0].status in ("available", "error"),
    )[0]
    assert backup.status == "available"
    walk("cbr", "show_backup", cbr.ShowBackupRequest(backup_id=backup.id))
    day = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")
    expiry = cbr.UpdateExpirationTimeReq(expect_expiration_date=day, time_zone="UTC+08:00")
    changed = walk(
        "cbr",
        "update_expiration_time",
        cbr.UpdateExpirationTimeRequest(vault_id=vault_id, body=expiry),
    )
    assert (changed.affected_backups_count, changed.new_expiration_day) == (1, day)
    update = cbr.BackupUpdateReq(backup=cbr.BackupUpdate(name=unique("backup")))
    walk("cbr", "update_backup", cbr.UpdateBackupRequest(backup_id=backup.id, body=update))
    restore = cbr.BackupRestoreReq(restore=cbr.BackupRestore(volume_id=disk))
    walk("cbr", "restore_backup", cbr.RestoreBackupRequest(backup_id=backup.id, body=restore))
    evs_client = walk.owner.clients["evs"]
    wait_for("restore", lambda: disk_status(evs_client, disk), lambda s: s == "available")
    return backup


def _walk_sharing(walk: Walk, backup_id: str) -> None:
    other = walk.other.project_id
    add = cbr.AddMembersReq(members=[other])
    walk("cbr", "add_member", cbr.AddMemberRequest(backup_id=backup_id, body=add))
    walk("cbr", "show_members_detail", cbr.ShowMembersDetailRequest(backup_id=backup_id))
    walk(
        "cbr",
        "show_member_detail",
        cbr.ShowMemberDetailRequest(backup_id=backup_id, member_id=other),
    )
    their_vault = _disk_vault(walk, unique("theirs"), [], as_other=True)
    accept = cbr.UpdateMember(status="accepted", vault_id=their_vault.id)
    walk(
        "cbr",
        "update_member_status",
        cbr.UpdateMemberStatusRequest(backup_id=backup_id, member_id=other, body=accept),
        as_other=True,
    )
    walk("cbr", "delete_member", cbr.DeleteMemberRequest(backup_id=backup_id, member_id=other))


def _walk_tags(walk: Walk, vault_id: str) -> None:
    tag = cbr.VaultTagsCreateReq(tag=cbr.TagCreate(key="team", value="storage"))
    walk("cbr", "create_vault_tags", cbr.CreateVaultTagsRequest(vault_id=vault_id, body=tag))
    batch = cbr.BulkCreateAndDeleteVaultTagsReq(
        action="create",
        tags=[
            cbr.BulkCreateAndDeleteTags(key="env", value="prod"),
            cbr.BulkCreateAndDeleteTags(key="tmp", value="x"),
        ],
    )
    walk(
        "cbr",
        "batch_create_and_delete_vault_tags",
        cbr.BatchCreateAndDeleteVaultTagsRequest(vault_id=vault_id, body=batch),
    )
    walk("cbr", "delete_vault_tag", cbr.DeleteVaultTagRequest(vault_id=vault_id, key="tmp"))
    shown = walk("cbr", "show_vault_tag", cbr.ShowVaultTagRequest(vault_id=vault_id)).tags
    assert {(t.key, t.value) for t in shown} == {("team", "storage"), ("env", "prod")}
    project = walk("cbr", "show_vault_project_tag", cbr.ShowVaultProjectTagRequest()).tags
    assert {(t.key, tuple(t.values)) for t in project} == {
        ("team", ("storage",)),
        ("env", ("prod",)),
    }
    query = cbr.VaultResourceInstancesReq(
        action="filter", tags=[cbr.TagsReq(key="env", values=["prod", "test"])]
    )
    found = walk(
        "cbr", "show_vault_resource_instances", cbr.ShowVaultResourceInstancesRequest(body=query)
    )
    assert found.total_count == 1
    assert found.resources[0].resource_id == vault_id
    assert found.resources[0].resource_detail.vault.id == vault_id


def _walk_project_info(walk: Walk, backup: Any) -> None:
    usage = walk("cbr", "show_storage_usage", cbr.ShowStorageUsageRequest())
    assert usage.resource_count == 1
    assert usage.storage_usage[0].resource_id == backup.resource_id
    assert usage.storage_usage[0].backup_count == 1
    metadata = walk("cbr", "show_metadata", cbr.ShowMetadataRequest(backup_id=backup.id))
    assert metadata.backup_id == backup.id
    assert backup.resource_id in metadata.volumes[0]
    features = walk("cbr", "list_features", cbr.ListFeaturesRequest()).to_json_object()
    assert features["replication.enable"] is False
    for key, value in features.items():
        shown = walk("cbr", "show_feature", cbr.ShowFeatureRequest(feature_key=key))
        assert shown.to_json_object() == {key: value}
    regions = walk(
        "cbr", "show_replication_capabilities", cbr.ShowReplicationCapabilitiesRequest()
    ).regions
    assert [(r.name, r.replication_destinations) for r in regions] == [("region-1", [])]
    external = cbr.ListExternalVaultRequest(
        external_project_id=walk.owner.project_id,
        region_id="region-2",
        protect_type="replication",
        objcet_type="disk",
    )
    assert walk("cbr", "list_external_vault", external).vaults == []


def _walk_protectables(walk: Walk, vault_id: str, disk: str) -> None:
    listed = walk(
        "cbr", "list_protectable", cbr.ListProtectableRequest(protectable_type="disk")
    ).instances
    assert disk in {p.id for p in listed}
    shown = walk(
        "cbr",
        "show_protectable",
        cbr.ShowProtectableRequest(protectable_type="disk", instance_id=disk),
    ).instance
    assert shown.protectable.result is True
    assert shown.protectable.vault.id == vault_id


def _walk_account(walk: Walk) -> None:
    projects = walk("cbr", "list_projects", cbr.ListProjectsRequest()).projects
    assert walk.owner.project_id in {p.id for p in projects}
    named = cbr.ListDomainProjectsRequest(domain_name=walk.owner.creds.domain_name)
    listed = walk("cbr", "list_domain_projects", named).projects
    assert walk.owner.project_id in {p.project_id for p in listed}
    shown = walk(
        "cbr", "show_domain", cbr.ShowDomainRequest(source_project_id=walk.owner.project_id)
    )
    assert (shown.domain_id, shown.domain_name) == (
        walk.owner.domain_id,
        walk.owner.creds.domain_name,
    )


def test_cbr_walk(world: World) -> None:
    walk = Walk(world.owner, world.other)
    evs_client = world.owner.clients["evs"]
    disk, spare = create_disk(evs_client, unique("d")), create_disk(evs_client, unique("d"))
    vault = _walk_vaults(walk, disk, spare)
    _walk_tags(walk, vault.id)
    _walk_protectables(walk, vault.id, disk)
    _walk_policies(walk, vault.id)
    backup = _walk_backups(walk, vault.id, disk)
    _walk_sharing(walk, backup.id)
    _walk_project_info(walk, backup)
    _walk_account(walk)
    logs = walk("cbr", "list_op_logs", cbr.ListOpLogsRequest(vault_id=vault.id)).operation_logs
    walk("cbr", "show_op_log", cbr.ShowOpLogRequest(operation_log_id=logs[0].id))
    walk("cbr", "delete_backup", cbr.DeleteBackupRequest(backup_id=backup.id))
    walk("cbr", "delete_vault", cbr.DeleteVaultRequest(vault_id=vault.id))
    walk.check_complete("cbr")


# --- EVS ----------------------------------------------------------------------------------


def _walk_volume_admin(walk: Walk, volume_id: str) -> None:
    change = evs.UpdateVolumeRequestBody(volume=evs.UpdateVolumeOption(name="renamed"))
    renamed = walk(
        "evs", "update_volume", evs.UpdateVolumeRequest(volume_id=volume_id, body=change)
    )
    assert renamed.name == "renamed"
    tags = evs.BatchCreateVolumeTagsRequestBody(
        action="create", tags=[evs.Tag(key="env", value="prod"), evs.Tag(key="tmp", value="")]
    )
    walk(
        "evs",
        "batch_create_volume_tags",
        evs.BatchCreateVolumeTagsRequest(volume_id=volume_id, body=tags),
    )
    drop = evs.BatchDeleteVolumeTagsRequestBody(
        action="delete", tags=[evs.DeleteTagsOption(key="tmp")]
    )
    walk(
        "evs",
        "batch_delete_volume_tags",
        evs.BatchDeleteVolumeTagsRequest(volume_id=volume_id, body=drop),
    )
    shown = walk("evs", "show_volume_tags", evs.ShowVolumeTagsRequest(volume_id=volume_id)).tags
    assert [(t.key, t.value) for t in shown] == [("env", "prod")]
    listed = walk("evs", "list_volume_tags", evs.ListVolumeTagsRequest()).tags
    assert listed == {"env": ["prod"]}
    query = evs.ListVolumesByTagsRequestBody(
        action="filter", tags=[evs.TagsForListVolumes(key="env", values=["prod"])]
    )
    found = walk("evs", "list_volumes_by_tags", evs.ListVolumesByTagsRequest(body=query))
    assert [r.resource_id for r in found.resources] == [volume_id]
    zones = walk(
        "evs", "cinder_list_availability_zones", evs.CinderListAvailabilityZonesRequest()
    ).availability_zone_info
    assert "az1" in {z.zone_name for z in zones}
    types = walk("evs", "cinder_list_volume_types", evs.CinderListVolumeTypesRequest())
    assert "SAS" in {t.name for t in types.volume_types}
    quotas = walk(
        "evs",
        "cinder_list_quotas",
        evs.CinderListQuotasRequest(target_project_id=walk.owner.project_id, usage="True"),
    ).quota_set
    assert quotas.volumes.in_use >= 1


def _offer(walk: Walk, volume_id: str, as_other: bool = False) -> Any:
    option = evs.CreateVolumeTransferOption(volume_id=volume_id, name="to-other")
    body = evs.CinderCreateVolumeTransferRequestBody(transfer=option)
    request = evs.CinderCreateVolumeTransferRequest(body=body)
    return walk("evs", "cinder_create_volume_transfer", request, as_other).transfer


def _accept(walk: Walk, offered: Any, as_other: bool = False) -> None:
    accept = evs.CinderAcceptVolumeTransferRequestBody(
        accept=evs.CinderAcceptVolumeTransferOption(auth_key=offered.auth_key)
    )
    request = evs.CinderAcceptVolumeTransferRequest(transfer_id=offered.id, body=accept)
    walk("evs", "cinder_accept_volume_transfer", request, as_other)


def _walk_transfers(walk: Walk, volume_id: str) -> None:
    first = _offer(walk, volume_id)
    listed = walk("evs", "cinder_list_volume_transfers", evs.CinderListVolumeTransfersRequest())
    assert [t.id for t in listed.transfers] == [first.id]
    shown = walk(
        "evs",
        "cinder_show_volume_transfer",
        evs.CinderShowVolumeTransferRequest(transfer_id=first.id),
    ).transfer
    assert shown.volume_id == volume_id
    walk(
        "evs",
        "cinder_delete_volume_transfer",
        evs.CinderDeleteVolumeTransferRequest(transfer_id=first.id),
    )
    _accept(walk, _offer(walk, volume_id), as_other=True)
    moved = walk.other.clients["evs"].show_volume(evs.ShowVolumeRequest(volume_id=volume_id))
    assert moved.volume.status == "available"
    _accept(walk, _offer(walk, volume_id, as_other=True))  # and back, for the rest of the walk


def _wait_evs_job(walk: Walk, job_id: str) -> None:
    status = wait_for(
        "disk job",
        lambda: walk("evs", "show_job", evs.ShowJobRequest(job_id=job_id)).status,
        lambda status: status in ("SUCCESS", "FAIL"),
    )
    assert status == "SUCCESS"


def _walk_resize(walk: Walk, volume_id: str) -> None:
    body = evs.ResizeVolumeRequestBody(os_extend=evs.OsExtend(new_size=2))
    request = evs.ResizeVolumeRequest(volume_id=volume_id, body=body)
    _wait_evs_job(walk, walk("evs", "resize_volume", request).job_id)


def _walk_snapshots(walk: Walk, volume_id: str) -> None:
    option = evs.CreateSnapshotOption(volume_id=volume_id, name=unique("snap"))
    body = evs.CreateSnapshotRequestBody(snapshot=option)
    snapshot_id = walk("evs", "create_snapshot", evs.CreateSnapshotRequest(body=body)).snapshot.id
    show = evs.ShowSnapshotRequest(snapshot_id=snapshot_id)
    wait_for(
        "snapshot",
        lambda: walk("evs", "show_snapshot", show).snapshot.status,
        lambda status: status == "available",
    )
    listed = walk("evs", "list_snapshots", evs.ListSnapshotsRequest(volume_id=volume_id))
    assert [s.id for s in listed.snapshots] == [snapshot_id]
    changes = evs.UpdateSnapshotRequestBody(snapshot=evs.UpdateSnapshotOption(description="d"))
    request = evs.UpdateSnapshotRequest(snapshot_id=snapshot_id, body=changes)
    assert walk("evs", "update_snapshot", request).snapshot.description == "d"
    back = evs.RollbackSnapshotRequestBody(rollback=evs.RollbackSnapshotOption(volume_id=volume_id))
    request = evs.RollbackSnapshotRequest(snapshot_id=snapshot_id, body=back)
    walk("evs", "rollback_snapshot", request)
    wait_for(
        "rollback",
        lambda: walk("evs", "show_snapshot", show).snapshot.status,
        lambda status: status == "available",
    )
    walk("evs", "delete_snapshot", evs.DeleteSnapshotRequest(snapshot_id=snapshot_id))


def _walk_recycle_bin(walk: Walk, runtime: Runtime, volume_id: str) -> None:
    """Delete the disk into the bin, take it back, then delete it for good from the bin."""
    assert walk("evs", "show_recycle_policy", evs.ShowRecyclePolicyRequest()).switch is False
    policy = evs.ModifyRecycleBinPolicyRequestBody(switch=True, threshold_time=1, keep_time=1)
    walk("evs", "update_recycle_policy", evs.UpdateRecyclePolicyRequest(body=policy))
    with runtime.database.unit_of_work() as session:
        disk = session.get(Disk, volume_id)
        assert disk is not None
        disk.created_at -= timedelta(days=2)
    delete = evs.DeleteVolumeRequest(volume_id=volume_id)
    _wait_evs_job(walk, walk("evs", "delete_volume", delete).job_id)
    listed = walk("evs", "list_volumes_in_recycle", evs.ListVolumesInRecycleRequest()).volumes
    assert [v.id for v in listed] == [volume_id]
    walk("evs", "show_volume_in_recycle", evs.ShowVolumeInRecycleRequest(volume_id=volume_id))
    revert = evs.RevertVolumeInRecycleRequest(volume_id=volume_id)
    walk("evs", "revert_volume_in_recycle", revert)
    _wait_evs_job(walk, walk("evs", "delete_volume", delete).job_id)
    gone = evs.DeleteVolumeInRecycleRequest(volume_id=volume_id)
    walk("evs", "delete_volume_in_recycle", gone)
    policy = evs.ModifyRecycleBinPolicyRequestBody(switch=False)
    walk("evs", "update_recycle_policy", evs.UpdateRecyclePolicyRequest(body=policy))


def test_evs_walk(world: World) -> None:
    walk = Walk(world.owner, world.other)
    option = evs.CreateVolumeOption(
        availability_zone="az1", volume_type="SAS", size=1, name=unique("disk")
    )
    created = walk(
        "evs",
        "create_volume",
        evs.CreateVolumeRequest(body=evs.CreateVolumeRequestBody(volume=option)),
    )
    wait_for(
        "disk",
        lambda: walk("evs", "show_job", evs.ShowJobRequest(job_id=created.job_id)).status,
        lambda status: status in ("SUCCESS", "FAIL"),
    )
    volume_id = created.volume_ids[0]
    walk("evs", "show_volume", evs.ShowVolumeRequest(volume_id=volume_id))
    walk("evs", "list_volumes", evs.ListVolumesRequest(limit=10))
    _walk_resize(walk, volume_id)
    _walk_snapshots(walk, volume_id)
    _walk_volume_admin(walk, volume_id)
    _walk_transfers(walk, volume_id)
    _walk_recycle_bin(walk, world.runtime, volume_id)
    listed = walk("evs", "list_versions", evs.ListVersionsRequest()).versions
    assert {"v2", "v2.1"} <= {v.id for v in listed}
    shown = walk("evs", "show_version", evs.ShowVersionRequest(version="v2")).versions
    assert [v.id for v in shown] == ["v2"]
    walk.check_complete("evs")


# --- KMS ----------------------------------------------------------------------------------


def _key(walk: Walk, request_class: type, key_id: str, name: str) -> Any:
    return walk("kms", name, request_class(body=kms.OperateKeyRequestBody(key_id=key_id)))


def _walk_keys(walk: Walk) -> str:
    body = kms.CreateKeyRequestBody(key_alias=unique("key"), key_description="coverage")
    key_id: str = walk("kms", "create_key", kms.CreateKeyRequest(body=body)).key_info.key_id
    _key(walk, kms.ListKeyDetailRequest, key_id, "list_key_detail")
    walk("kms", "list_keys", kms.ListKeysRequest(body=kms.ListKeysRequestBody(limit="10")))
    assert key_id in walk("kms", "list_keys", kms.ListKeysRequest()).keys  # no body at all
    alias = kms.UpdateKeyAliasRequestBody(key_id=key_id, key_alias=unique("renamed"))
    walk("kms", "update_key_alias", kms.UpdateKeyAliasRequest(body=alias))
    text = kms.UpdateKeyDescriptionRequestBody(key_id=key_id, key_description="described")
    walk("kms", "update_key_description", kms.UpdateKeyDescriptionRequest(body=text))
    _walk_key_tags(walk, key_id)
    _walk_aliases(walk, key_id)
    _walk_rotation(walk, key_id)
    _key(walk, kms.DisableKeyRequest, key_id, "disable_key")
    _key(walk, kms.EnableKeyRequest, key_id, "enable_key")
    return key_id


def _walk_key_tags(walk: Walk, key_id: str) -> None:
    one = kms.CreateKmsTagRequestBody(tag=kms.TagItem(key="team", value="a"))
    walk("kms", "create_kms_tag", kms.CreateKmsTagRequest(key_id=key_id, body=one))
    batch = kms.BatchCreateKmsTagsRequestBody(
        action="create", tags=[kms.TagItem(key="env", value="prod"), kms.TagItem(key="x")]
    )
    walk("kms", "batch_create_kms_tags", kms.BatchCreateKmsTagsRequest(key_id=key_id, body=batch))
    walk("kms", "delete_tag", kms.DeleteTagRequest(key_id=key_id, key="x"))
    shown = walk("kms", "show_kms_tags", kms.ShowKmsTagsRequest(key_id=key_id))
    assert shown.exist_tags_num == 2
    listed = walk("kms", "list_kms_tags", kms.ListKmsTagsRequest()).tags
    assert {(t.key, tuple(t.values)) for t in listed} == {("team", ("a",)), ("env", ("prod",))}
    query = kms.ListKmsByTagsRequestBody(action="filter", tags=[kms.Tag(key="env", values=[])])
    found = walk(
        "kms",
        "list_kms_by_tags",
        kms.ListKmsByTagsRequest(resource_instances="resource_instances", body=query),
    )
    assert [r.resource_id for r in found.resources] == [key_id]


def _walk_aliases(walk: Walk, key_id: str) -> None:
    body = kms.CreateKeyRequestBody(key_alias=unique("key"))
    other = walk("kms", "create_key", kms.CreateKeyRequest(body=body)).key_info.key_id
    name = "alias/" + unique("cov")
    made = walk(
        "kms", "create_alias", kms.CreateAliasRequest(body=kms.CreateAliasRequestBody(key_id, name))
    )
    assert (made.alias, made.key_id) == (name, key_id)
    listed = walk("kms", "list_aliases", kms.ListAliasesRequest(key_id=key_id))
    assert name in listed.raw_content.decode()
    move = kms.AssociateAliasRequestBody(alias=name, target_key_id=other)
    moved = walk("kms", "associate_alias", kms.AssociateAliasRequest(body=move))
    assert moved.key_id == other
    drop = kms.DeleteAliasRequestBody(key_id=other, aliases=[name])
    walk("kms", "delete_alias", kms.DeleteAliasRequest(body=drop))


def _walk_rotation(walk: Walk, key_id: str) -> None:
    _key(walk, kms.EnableKeyRotationRequest, key_id, "enable_key_rotation")
    interval = kms.UpdateKeyRotationIntervalRequestBody(key_id=key_id, rotation_interval=90)
    walk(
        "kms",
        "update_key_rotation_interval",
        kms.UpdateKeyRotationIntervalRequest(body=interval),
    )
    walk(
        "kms", "rotate_on_demand", kms.RotateOnDemandRequest(body=kms.OperateKeyRequestBody(key_id))
    )
    shown = _key(walk, kms.ShowKeyRotationStatusRequest, key_id, "show_key_rotation_status")
    assert (shown.key_rotation_enabled, shown.rotation_interval) == (True, 90)
    assert (shown.number_of_rotations, len(shown.key_materials)) == (1, 2)
    _key(walk, kms.DisableKeyRotationRequest, key_id, "disable_key_rotation")


def _walk_data_keys(walk: Walk, key_id: str) -> None:
    made = walk(
        "kms",
        "create_datakey",
        kms.CreateDatakeyRequest(body=kms.CreateDatakeyRequestBody(key_id=key_id)),
    )
    walk(
        "kms",
        "create_datakey_without_plaintext",
        kms.CreateDatakeyWithoutPlaintextRequest(body=kms.CreateDatakeyRequestBody(key_id=key_id)),
    )
    data_key = bytes.fromhex(made.plain_text)
    encrypt = kms.EncryptDatakeyRequestBody(
        key_id=key_id,
        plain_text=(data_key + hashlib.sha256(data_key).digest()).hex(),
        datakey_plain_length=str(len(data_key)),
    )
    cipher = walk("kms", "encrypt_datakey", kms.EncryptDatakeyRequest(body=encrypt)).cipher_text
    decrypt = kms.DecryptDatakeyRequestBody(
        key_id=key_id, cipher_text=cipher, datakey_cipher_length=str(len(data_key))
    )
    walk("kms", "decrypt_datakey", kms.DecryptDatakeyRequest(body=decrypt))
    encrypt_data = kms.EncryptDataRequestBody(key_id=key_id, plain_text="a secret")
    sealed = walk("kms", "encrypt_data", kms.EncryptDataRequest(body=encrypt_data))
    decrypt_data = kms.DecryptDataRequestBody(cipher_text=sealed.cipher_text)
    opened = walk("kms", "decrypt_data", kms.DecryptDataRequest(body=decrypt_data))
    assert (opened.key_id, opened.plain_text) == (key_id, "a secret")


def _walk_grants(walk: Walk, key_id: str) -> None:
    def grant(operations: list[str]) -> str:
        body = kms.CreateGrantRequestBody(
            key_id=key_id,
            grantee_principal=walk.other.domain_id,
            grantee_principal_type="domain",
            operations=operations,
        )
        grant_id: str = walk("kms", "create_grant", kms.CreateGrantRequest(body=body)).grant_id
        return grant_id

    revocable, retirable = grant(["describe-key"]), grant(["describe-key", "retire-grant"])
    walk("kms", "list_grants", kms.ListGrantsRequest(body=kms.ListGrantsRequestBody(key_id=key_id)))
    walk(
        "kms",
        "list_retirable_grants",
        kms.ListRetirableGrantsRequest(body=kms.ListRetirableGrantsRequestBody()),
        as_other=True,
    )
    revoke = kms.RevokeGrantRequestBody(key_id=key_id, grant_id=revocable)
    walk("kms", "cancel_grant", kms.CancelGrantRequest(body=revoke))
    retire = kms.RevokeGrantRequestBody(key_id=key_id, grant_id=retirable)
    walk("kms", "cancel_self_grant", kms.CancelSelfGrantRequest(body=retire), as_other=True)


def test_kms_walk(world: World) -> None:
    walk = Walk(world.owner, world.other)
    key_id = _walk_keys(walk)
    _walk_data_keys(walk, key_id)
    _walk_grants(walk, key_id)
    schedule = kms.ScheduleKeyDeletionRequestBody(key_id=key_id, pending_days="7")
    walk("kms", "delete_key", kms.DeleteKeyRequest(body=schedule))
    _key(walk, kms.CancelKeyDeletionRequest, key_id, "cancel_key_deletion")
    versions = walk("kms", "show_versions", kms.ShowVersionsRequest()).versions
    assert "v1.0" in {v.id for v in versions}
    shown = walk("kms", "show_version", kms.ShowVersionRequest(version_id="v1.0")).version
    assert shown["id"] == "v1.0"
    walk.check_complete("kms")
