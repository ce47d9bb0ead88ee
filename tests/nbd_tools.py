"""Real NBD clients for tests: Debian's libnbd binding (there is none on PyPI) and the
command-line tools (`qemu-img`, `qemu-io`, `nbdinfo`)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEBIAN_PYTHON = "/usr/lib/python3/dist-packages"
TOOLS = ("nbdkit", "qemu-img", "qemu-io", "nbdinfo")


def libnbd() -> ModuleType:
    """Debian's `nbd` module, importable by appending its directory (last, so that nothing
    else of the system's Python shadows the project's packages)."""
    if DEBIAN_PYTHON not in sys.path:
        sys.path.append(DEBIAN_PYTHON)
    try:
        import nbd  # type: ignore[import-not-found]
    except ImportError:
        pytest.skip("python3-libnbd is not installed (scripts/setup-nbd.sh installs it)")
    return nbd  # type: ignore[no-any-return]


def need_tools(*names: str) -> None:
    missing = [name for name in names or TOOLS if shutil.which(name) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (scripts/setup-nbd.sh installs them)")


PSK_IDENTITY = "opencbr"


def psk_file(directory: Path) -> Path:
    """A PSK file as psktool writes it (`identity:hexkey`), named `keys.psk` so that its
    directory is also a QEMU `tls-creds-psk` directory."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "keys.psk"
    path.write_text(f"{PSK_IDENTITY}:{os.urandom(32).hex()}\n")
    path.chmod(0o600)
    return path


def x509_directories(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A CA and a server certificate for `host`: the server's directory (nbdkit's
    --tls-certificates) and the client's (QEMU's tls-creds-x509, libnbd's tls-certificates)."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        else:
            usage = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        return builder.add_extension(usage, critical=True).sign(signer, hashes.SHA256())

    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opencbr test CA")])
    ca = certificate("opencbr test CA", ca_key, ca_name, ca_key, ca=True)
    server = certificate(host, server_key, ca_name, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    server_dir, client_dir = directory / "server", directory / "client"
    for made in (server_dir, client_dir):
        made.mkdir(parents=True, exist_ok=True)
        (made / "ca-cert.pem").write_bytes(ca.public_bytes(pem))
    (server_dir / "server-cert.pem").write_bytes(server.public_bytes(pem))
    key_file = server_dir / "server-key.pem"
    key_file.write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)
    return server_dir, client_dir
