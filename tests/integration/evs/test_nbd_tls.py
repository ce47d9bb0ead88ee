"""NBD over TLS on a live server, with real clients: QEMU's qemu-io with a `tls-creds` object
and nbdinfo with an `nbds://` URI read an export; a client that does not start TLS, or that
holds other credentials, is refused. PSK on every address (not only loopback), X.509 on
loopback."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from opencbr.core.context import Runtime
from opencbr.core.settings import Settings
from tests.conftest import ROOT_KEY
from tests.nbd_tools import PSK_IDENTITY, need_tools, psk_file, x509_directories

from .conftest import TenantMaker, create_disk, write
from .test_nbd import GiB, nbd_open

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@dataclass(frozen=True)
class Tls:
    mode: str
    server: Path
    """nbdkit's PSK file or certificate directory."""
    qemu_object: str
    user: str
    """The URI's user: libnbd's PSK identity."""
    query: str
    """What libnbd needs in an `nbds://` URI to connect."""
    wrong_query: str
    """Other credentials: another key, or another CA."""

    def uri(self, uri: str, query: str) -> str:
        return uri.replace("nbds://", f"nbds://{self.user}", 1) + query


@pytest.fixture(params=["psk", "x509"])
def tls(request: pytest.FixtureRequest, tmp_path: Path) -> Tls:
    if request.param == "psk":
        keys, other = psk_file(tmp_path / "psk"), psk_file(tmp_path / "other-psk")
        return Tls(
            "psk",
            keys,
            f"tls-creds-psk,id=tls0,endpoint=client,dir={keys.parent},username={PSK_IDENTITY}",
            f"{PSK_IDENTITY}@",
            f"?tls-psk-file={keys}",
            f"?tls-psk-file={other}",
        )
    server, client = x509_directories(tmp_path / "x509")
    _, other = x509_directories(tmp_path / "other-x509")
    return Tls(
        "x509",
        server,
        f"tls-creds-x509,id=tls0,endpoint=client,dir={client}",
        "",
        f"?tls-certificates={client}",
        f"?tls-certificates={other}",
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str, tls: Tls) -> Settings:
    if tls.mode == "psk":  # listens on every address: allowed with TLS
        where = {"nbd_host": "0.0.0.0", "nbd_address": "127.0.0.1", "nbd_tls_psk_file": tls.server}
    else:
        where = {"nbd_tls_certificates_dir": tls.server}
    return Settings(
        data_dir=tmp_path / "data", database_url=database_url, root_key=ROOT_KEY, **where
    )


def test_an_export_over_tls(runtime: Runtime, tenant: TenantMaker, tls: Tls) -> None:
    need_tools("nbdkit", "qemu-io", "nbdinfo")
    owner = tenant()
    disk_id = create_disk(runtime, owner)
    write(owner, disk_id, 0, b"\xab" * 65536)
    export = nbd_open(owner, disk_id, read_only=True)
    name, port = export["export_name"], export["port"]
    assert export["tls"] == tls.mode
    assert export["uri"] == f"nbds://127.0.0.1:{port}/{name}"

    read = subprocess.run(
        [
            "qemu-io",
            "-r",
            "--object",
            tls.qemu_object,
            "--image-opts",
            f"driver=nbd,host=127.0.0.1,port={port},export={name},tls-creds=tls0",
            "-c",
            "read -P 0xab 0 64k",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert read.returncode == 0, read.stdout + read.stderr
    assert "read 65536/65536 bytes" in read.stdout
    assert "Pattern verification failed" not in read.stdout

    def nbdinfo(uri: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nbdinfo", "--json", uri], capture_output=True, text=True, timeout=60, check=False
        )

    info = nbdinfo(tls.uri(export["uri"], tls.query))
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["exports"][0]["export-size"] == GiB
    plain = nbdinfo(f"nbd://127.0.0.1:{port}/{name}")  # the same name without TLS
    assert plain.returncode != 0
    assert "opt_go" in plain.stderr, plain.stderr  # refused at the handshake
    assert nbdinfo(tls.uri(export["uri"], tls.wrong_query)).returncode != 0
