"""The file browser's appliance reads the backup as a plain loopback NBD client: a server
whose NBD side requires TLS refuses file browsing with a clear reason instead of failing
inside QEMU."""

from __future__ import annotations

from pathlib import Path

import pytest

from opencbr.cbr.errors import FileBrowserUnavailable
from opencbr.cbr.files.service import _check_plain_nbd
from opencbr.core.settings import Settings


def test_plain_nbd_server_is_browsable(tmp_path: Path) -> None:
    _check_plain_nbd(Settings(data_dir=tmp_path))


@pytest.mark.parametrize("field", ["nbd_tls_psk_file", "nbd_tls_certificates_dir"])
def test_tls_nbd_server_refuses_browsing_clearly(tmp_path: Path, field: str) -> None:
    settings = Settings(data_dir=tmp_path, **{field: tmp_path / "tls"})
    with pytest.raises(FileBrowserUnavailable) as refused:
        _check_plain_nbd(settings)
    assert refused.value.status == 501
    assert "requires TLS" in str(refused.value)
