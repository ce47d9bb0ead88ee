"""Bad input to external disks answers a clear 400 and changes nothing: a bad URI, a server
that is not there, a bitmap the server does not offer, an NBD restore target that cannot be
written; the data path of an external disk is refused (its bytes live in the hypervisor)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opencbr.cli.client import ApiError
from opencbr.core.jobs import WorkerPool
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows
from tests.e2e import qemu_nbd as q
from tests.e2e.test_external_disks import Cli

pytestmark = pytest.mark.slow


def test_bad_sources_and_targets_are_refused_and_change_nothing(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool, tmp_path: Path
) -> None:
    q.need_qemu()
    creds = make_tenant()
    project, _, cbr_client, data = flows.tenant_clients(server.url, creds)
    cli = Cli(server, creds, tmp_path)
    image = q.create(tmp_path / "vm.qcow2", "64M")
    q.write(image, (0x5A, 0, 1 << 20))
    served = q.QemuNbd(image, tmp_path / "vm.sock")  # read-only, no bitmap exported
    try:
        refusals = [
            (("--nbd", "http://example.com/disk"), "scheme must be one of"),
            (("--nbd", "nbd+unix:///vm?socket=/nonexistent.sock"), "cannot connect"),
            (("--nbd", served.uri, "--bitmap", "b0"), "offers no dirty bitmap b0"),
            (("--nbd", served.uri, "--tls-psk", "relative.psk"), "absolute path"),
            (("--nbd", "nbd://h/x?tls-psk-file=/etc/k"), "--tls-psk"),
        ]
        for args, message in refusals:
            out = cli("disk", "register", "--name", "bad", *args, code=1)
            assert "EVS.0433" in out, out
            assert message in " ".join(out.split()), out
        path = f"/v2/{project}/cloudvolumes/external"
        for body in [
            {"volume": {"name": "x", "nbd_uri": "http://x"}},
            {"volume": {"name": "x", "nbd_uri": served.uri, "size": 3}},
            {"volume": {"name": "x"}},
            {"volume": {"name": "x", "nbd_uri": "nbd://h/\u0000"}},
        ]:
            with pytest.raises(ApiError) as bad:
                data.request("POST", path, body)
            assert (bad.value.status, bad.value.code[:4]) == (400, "EVS."), body
        out = cli("disk", "register", "--name", "", "--nbd", served.uri, code=1)
        assert "EVS.0400" in out, out
        assert cli("disk", "sources", "--json") == []
        assert cli("disk", "list", "--json") == []

        disk = cli("disk", "register", "--name", "vm", "--nbd", served.uri, "--json")
        with pytest.raises(ApiError) as refused:
            flows.read(data, project, disk["id"], 0, 4096)
        assert refused.value.code == "EVS.0434"
        vault = flows.disk_vault(cbr_client, "vms", 10, [disk["id"]])
        backup = flows.back_up(cbr_client, vault.id, "full")
        assert backup.status == "available"
        for target, message in [
            ("nbd://127.0.0.1:1/none", "cannot connect"),
            (served.uri, "read-only"),
            ("file:///etc/passwd", "scheme must be one of"),
        ]:
            out = cli("restore", backup.id, "--nbd", target, code=1)
            assert message in " ".join(out.split()), out
        with pytest.raises(ApiError) as both:
            data.request(
                "POST",
                f"/v3/{project}/backups/{backup.id}/restore",
                {"restore": {"nbd_uri": served.uri, "volume_id": disk["id"]}},
            )
        assert both.value.status == 400
        assert "nbd_uri is a target of its own" in both.value.message
        assert cli("backup", "show", backup.id, "--json")["status"] == "available"
        cli("disk", "delete", disk["id"], "--json")  # the record goes, the VM's disk stays
        assert cli("disk", "sources", "--json") == []
    finally:
        served.stop()
