"""S10 with real data through the official SDKs: an encrypted backup shared with another
account is usable there only through a KMS grant on its key (and the recipient's
EVSAccessKMS agency); what the recipient makes from it is encrypted and holds the owner's bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkevs.v2 import model as evs
from huaweicloudsdkiam.v3 import model as iam_model
from huaweicloudsdkkms.v2 import KmsClient
from huaweicloudsdkkms.v2 import model as kms_model

from opencbr.core.context import Runtime
from opencbr.core.jobs import WorkerPool
from tests.conftest import LiveServer, TenantFactory, unique
from tests.e2e import flows
from tests.e2e.sdk import project_client
from tests.e2e.test_sharing_scenario import MiB, Tenant, accept, refused, share, shared_with

pytestmark = pytest.mark.slow

MARKER = b"PLAINTEXT-OF-ACCOUNT-A;" * 2048  # 46 KiB of a pattern that must never rest on disk
GRANT_OPERATIONS = ["describe-key", "create-datakey", "encrypt-datakey", "decrypt-datakey"]


def enable_agency(tenant: Tenant) -> None:
    body = iam_model.CreateAgencyRequestBody(
        agency=iam_model.CreateAgencyOption(
            name="EVSAccessKMS", domain_id=tenant.creds.domain_id, trust_domain_name="op_svc_evs"
        )
    )
    tenant.iam.create_agency(iam_model.CreateAgencyRequest(body=body))


def create_key(kms: object) -> str:
    body = kms_model.CreateKeyRequestBody(key_alias=unique("disk-key"), key_description="disks")
    key_id: str = kms.create_key(kms_model.CreateKeyRequest(body=body)).key_info.key_id  # type: ignore[attr-defined]
    return key_id


def grant(kms: object, key_id: str, domain_id: str) -> str:
    body = kms_model.CreateGrantRequestBody(
        key_id=key_id,
        grantee_principal=domain_id,
        grantee_principal_type="domain",
        operations=GRANT_OPERATIONS,
    )
    grant_id: str = kms.create_grant(kms_model.CreateGrantRequest(body=body)).grant_id  # type: ignore[attr-defined]
    return grant_id


def revoke(kms: object, key_id: str, grant_id: str) -> None:
    body = kms_model.RevokeGrantRequestBody(key_id=key_id, grant_id=grant_id)
    kms.cancel_grant(kms_model.CancelGrantRequest(body=body))  # type: ignore[attr-defined]


def create_from_backup(tenant: Tenant, backup_id: str, name: str) -> object:
    option = evs.CreateVolumeOption(
        availability_zone="az1", volume_type="SAS", backup_id=backup_id, name=name
    )
    return tenant.evs.create_volume(
        evs.CreateVolumeRequest(body=evs.CreateVolumeRequestBody(volume=option))
    )


def files_holding(root: Path, needle: bytes) -> list[Path]:
    """Every file under `root` whose bytes contain `needle` (read in overlapping windows)."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        with path.open("rb") as handle:
            tail = b""
            while chunk := handle.read(8 * MiB):
                if needle in tail + chunk:
                    found.append(path)
                    break
                tail = chunk[-len(needle) :]
    return found


def test_encrypted_backup_needs_a_grant_and_the_agency_across_accounts(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool, runtime: Runtime
) -> None:
    a, b = Tenant(server, make_tenant()), Tenant(server, make_tenant())
    kms_a = project_client(KmsClient, server.url, a.creds)

    # A: the agency, a key of its own, an encrypted disk under it holding the marker.
    enable_agency(a)
    key_id = create_key(kms_a)
    source = flows.create_disk(
        a.evs,
        "secret",
        size_gb=1,
        metadata={"__system__encrypted": "1", "__system__cmkid": key_id},
    )
    shown = a.evs.show_volume(evs.ShowVolumeRequest(volume_id=source)).volume
    assert (shown.encrypted, shown.metadata["__system__cmkid"]) == (True, key_id)
    a.write(source, 0, MARKER)
    a.write(source, 200 * MiB, MARKER)
    vault_a = flows.disk_vault(a.cbr, "vault-a", 10, [source])
    backup = flows.back_up(a.cbr, vault_a.id, "encrypted-1")
    assert backup.status == "available"
    assert backup.extend_info.encrypted is True

    # Shared and accepted like any other backup (S10: sharing itself needs no grant).
    share(a, backup.id, b)
    assert [x.extend_info.encrypted for x in shared_with(b, "pending")] == [True]
    vault_b = flows.disk_vault(b.cbr, "vault-b", 10, [])
    accept(b, backup.id, vault_b.id)

    # Without a grant B is refused at once, naming the key and the missing grant.
    no_grant = refused(lambda: create_from_backup(b, backup.id, "too-early"))
    assert (no_grant.status_code, no_grant.error_code) == (400, "BackupService.6709")
    assert key_id in no_grant.error_msg
    assert "grant" in no_grant.error_msg
    assert b.evs.list_volumes(evs.ListVolumesRequest()).count == 0

    # A grants the key to B's account; B still lacks the agency for an encrypted disk.
    grant_id = grant(kms_a, key_id, b.creds.domain_id)
    no_agency = refused(lambda: create_from_backup(b, backup.id, "no-agency"))
    assert (no_agency.status_code, no_agency.error_code) == (403, "EVS.0403")
    assert "EVSAccessKMS" in no_agency.error_msg
    assert b.evs.list_volumes(evs.ListVolumesRequest()).count == 0

    # With both, B's disk is encrypted and holds A's bytes.
    enable_agency(b)
    created, job = flows.disk_from_backup(b.evs, backup.id, "from-encrypted")
    assert job.status == "SUCCESS", job.fail_reason
    volume = b.evs.show_volume(evs.ShowVolumeRequest(volume_id=created)).volume
    assert (volume.status, volume.encrypted) == ("available", True)
    # ... under B's own default disk key, not A's: B's disk must outlive the grant.
    assert volume.metadata["__system__cmkid"] not in ("", key_id)
    assert b.read(created, 0, len(MARKER)) == MARKER
    assert b.read(created, 200 * MiB, len(MARKER)) == MARKER

    # Neither disk image nor the chunk store holds the plaintext at rest.
    data_dir = Path(runtime.settings.data_dir)
    assert list((data_dir / "volumes").glob(f"{created}*"))
    assert files_holding(data_dir / "volumes", MARKER[:4096]) == []
    assert files_holding(data_dir / "store", MARKER[:4096]) == []

    # Revoking the grant stops the next use at once; B's own disk stays readable (S9).
    revoke(kms_a, key_id, grant_id)
    revoked = refused(lambda: create_from_backup(b, backup.id, "after-revoke"))
    assert (revoked.status_code, revoked.error_code) == (400, "BackupService.6709")
    assert key_id in revoked.error_msg
    assert b.read(created, 0, len(MARKER)) == MARKER
    assert b.evs.list_volumes(evs.ListVolumesRequest()).count == 1
    listed = b.cbr.list_backups(cbr.ListBackupsRequest(own_type="shared")).backups
    assert [x.id for x in listed] == [backup.id]
