"""TLS of the NBD server: what the settings ask for, as nbdkit's options.

Loopback needs none; any other listen address requires it, since an export's name is its only
authorization and must not cross a network in the clear. nbdkit does the STARTTLS itself
(`--tls=require`, so a client that does not start TLS is refused at the handshake), with
either of what QEMU's `tls-creds` objects support:

* pre-shared keys (`Settings.nbd_tls_psk_file`): a file of `identity:hexkey` lines, as
  `psktool` writes them; a QEMU client reads the same file as `keys.psk` of the directory of
  its `tls-creds-psk` object, nbdinfo/libnbd as `tls-psk-file`;
* X.509 (`Settings.nbd_tls_certificates_dir`): a directory holding `server-cert.pem` and
  `server-key.pem` (and `ca-cert.pem`); a QEMU client's `tls-creds-x509` directory holds the
  `ca-cert.pem` that signed them, and the certificate names the host the client connects to.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from opencbr.core.settings import Settings

from ..errors import NbdSettingsInvalid

__all__ = ["TLS_NONE", "TLS_PSK", "TLS_X509", "TlsPlan", "tls_plan"]

TLS_NONE, TLS_PSK, TLS_X509 = "", "psk", "x509"
SERVER_FILES = ("server-cert.pem", "server-key.pem")
_SET_ONE = "set OPENCBR_NBD_TLS_PSK_FILE or OPENCBR_NBD_TLS_CERTIFICATES_DIR"


@dataclass(frozen=True)
class TlsPlan:
    """The server's TLS mode (`TLS_*`) and the nbdkit options that make it."""

    mode: str
    nbdkit_args: tuple[str, ...]


def tls_plan(settings: Settings) -> TlsPlan:
    """What the settings ask for, or NbdSettingsInvalid saying what to change."""
    psk, certificates = settings.nbd_tls_psk_file, settings.nbd_tls_certificates_dir
    if psk is not None and certificates is not None:
        raise NbdSettingsInvalid(reason=f"TLS is either PSK or X.509: {_SET_ONE}, not both")
    if psk is not None:
        if not psk.is_file():
            raise NbdSettingsInvalid(reason=f"the TLS PSK file {psk} does not exist")
        return TlsPlan(TLS_PSK, ("--tls=require", f"--tls-psk={psk.resolve()}"))
    if certificates is not None:
        missing = [name for name in SERVER_FILES if not (certificates / name).is_file()]
        if missing:
            raise NbdSettingsInvalid(
                reason=f"the TLS certificate directory {certificates} lacks {', '.join(missing)}"
            )
        return TlsPlan(TLS_X509, ("--tls=require", f"--tls-certificates={certificates.resolve()}"))
    if not ipaddress.ip_address(settings.nbd_host).is_loopback:
        raise NbdSettingsInvalid(
            reason=f"{settings.nbd_host} is not a loopback address, and NBD beyond loopback "
            f"needs TLS: {_SET_ONE}"
        )
    return TlsPlan(TLS_NONE, ())
