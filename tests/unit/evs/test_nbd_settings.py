"""The NBD server's settings: TLS beyond loopback, one kind of TLS, the address clients get."""

from __future__ import annotations

from pathlib import Path

import pytest

from opencbr.core.settings import Settings
from opencbr.evs.errors import NbdSettingsInvalid
from opencbr.evs.nbd.server import advertised_address
from opencbr.evs.nbd.tls import TLS_NONE, TLS_PSK, TLS_X509, tls_plan


def test_loopback_needs_no_tls_and_other_addresses_need_it(tmp_path: Path) -> None:
    assert tls_plan(Settings(nbd_host="::1")).mode == TLS_NONE
    for host in ("0.0.0.0", "192.0.2.7", "::"):
        with pytest.raises(NbdSettingsInvalid) as refused:
            tls_plan(Settings(nbd_host=host))
        assert f"{host} is not a loopback address" in refused.value.message
        assert "OPENCBR_NBD_TLS_PSK_FILE" in refused.value.message
        assert refused.value.code == "EVS.0435"
    keys = tmp_path / "keys.psk"
    keys.write_text("opencbr:00\n")
    plan = tls_plan(Settings(nbd_host="0.0.0.0", nbd_tls_psk_file=keys))
    assert (plan.mode, plan.nbdkit_args) == (TLS_PSK, ("--tls=require", f"--tls-psk={keys}"))
    for name in ("server-cert.pem", "server-key.pem"):
        (tmp_path / name).write_text("")
    assert tls_plan(Settings(nbd_tls_certificates_dir=tmp_path)).mode == TLS_X509


def test_unusable_tls_settings_say_what_to_change(tmp_path: Path) -> None:
    keys = tmp_path / "keys.psk"
    keys.write_text("opencbr:00\n")
    cases = {
        "not both": Settings(nbd_tls_psk_file=keys, nbd_tls_certificates_dir=tmp_path),
        "nothing.psk does not exist": Settings(nbd_tls_psk_file=tmp_path / "nothing.psk"),
        "lacks server-cert.pem, server-key.pem": Settings(nbd_tls_certificates_dir=tmp_path),
    }
    for reason, settings in cases.items():
        with pytest.raises(NbdSettingsInvalid, match=reason):
            tls_plan(settings)
    with pytest.raises(ValueError, match="IP"):
        Settings(nbd_host="nbd.example.com")


def test_the_address_clients_are_told() -> None:
    assert advertised_address(Settings(), 10809) == "127.0.0.1:10809"
    assert advertised_address(Settings(nbd_host="::1"), 10809) == "[::1]:10809"
    assert advertised_address(Settings(nbd_address="nbd.example.com"), 5) == "nbd.example.com:5"
    given = Settings(nbd_address="nbd.example.com:443")
    assert advertised_address(given, 5) == "nbd.example.com:443"
    assert advertised_address(Settings(nbd_address="[2001:db8::1]"), 5) == "[2001:db8::1]:5"
    assert advertised_address(Settings(nbd_address="[2001:db8::1]:7"), 5) == "[2001:db8::1]:7"
    anywhere = advertised_address(Settings(nbd_host="0.0.0.0"), 5)
    assert not anywhere.startswith("0.0.0.0")  # this host's name
    assert anywhere.endswith(":5")
