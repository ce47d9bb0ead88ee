"""The NBD server of a process: nbdkit (the protocol engine) with our plugin, and the broker.

Started on first use (`nbd_server`) in any process that opens an export, stopped with the
process (`stop_nbd_server`; nbdkit also runs with ``--exit-with-parent``). It listens on
`Settings.nbd_host` and `Settings.nbd_port`, or on a free port when that is 0; beyond
loopback only with TLS (tls.py). Clients are told `Settings.nbd_address` when it is set (a
name the clients resolve, a port forwarded to this one), else where it listens. Several
processes may each run one, registered in the database (registry.py): an export's URI names
the server of the process that opened it (or, in an API process without one, a registered
server), and every process's broker resolves any export from the database.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from opencbr.core.context import Part, Runtime
from opencbr.core.settings import Settings

from ..errors import NbdUnavailable
from .broker import Broker
from .registry import Registration
from .tls import tls_plan

__all__ = ["NbdServer", "advertised_address", "nbd_server", "stop_nbd_server"]

PLUGIN = Path(__file__).with_name("nbdkit_plugin.py")
NBDKIT_THREADS = 16
START_SECONDS = 15.0
_SERVER: Part[NbdServer] = Part("evs.nbd_server")
_start_lock = threading.Lock()


@dataclass
class NbdServer:
    host: str
    port: int
    tls: str
    """`tls.TLS_*`: what a client must start before it names an export."""
    address: str
    """host:port that clients are told (a URI's; an IPv6 address in brackets)."""
    process: subprocess.Popen[bytes]
    broker: Broker
    registration: Registration

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.registration.stop()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.broker.stop()


def nbd_server(runtime: Runtime) -> NbdServer:
    """This process's running NBD server, started now if needed."""
    with _start_lock:
        server = runtime.parts.get(_SERVER)
        if server is not None and server.running():
            return server
        if server is not None:  # nbdkit died: start another
            server.registration.stop()
            server.broker.stop()
        server = _start(runtime)
        runtime.parts.set(_SERVER, server)
        return server


def stop_nbd_server(runtime: Runtime) -> None:
    with _start_lock:
        server = runtime.parts.pop(_SERVER)
    if server is not None:
        server.stop()


def _nbdkit() -> str:
    path = shutil.which("nbdkit")
    if path is None:
        raise NbdUnavailable(reason="nbdkit is not installed")
    probe = subprocess.run(
        [path, "--dump-plugin", "python"], capture_output=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        raise NbdUnavailable(reason="nbdkit's Python plugin is not installed")
    return path


def _start(runtime: Runtime) -> NbdServer:
    settings = runtime.settings
    tls = tls_plan(settings)
    nbdkit = _nbdkit()
    broker = Broker(runtime, Path(settings.data_dir).resolve() / "nbd")
    broker.start()
    tries = 1 if settings.nbd_port else 5  # a free port can be taken before nbdkit binds it
    reason = ""
    log_path = broker.path.with_suffix(".log")  # nbdkit's own messages
    for _ in range(tries):
        port = settings.nbd_port or _free_port(settings.nbd_host)
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    nbdkit,
                    "--foreground",
                    "--exit-with-parent",
                    f"--ipaddr={settings.nbd_host}",
                    f"--port={port}",
                    f"--threads={NBDKIT_THREADS}",
                    *tls.nbdkit_args,
                    "python",
                    str(PLUGIN),
                    f"control={broker.path}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        reason = _wait_listening(process, settings.nbd_host, port, log_path)
        if not reason:
            address = advertised_address(settings, port)
            registration = Registration(runtime.database, address, tls.mode)
            registration.start()
            return NbdServer(
                settings.nbd_host, port, tls.mode, address, process, broker, registration
            )
    broker.stop()
    raise NbdUnavailable(reason=f"nbdkit did not start ({reason})")


def advertised_address(settings: Settings, port: int) -> str:
    """host:port for clients: `Settings.nbd_address` (with this port when it names none), else
    the listen address (this host's name when that is every address)."""
    given = settings.nbd_address
    if given:
        host, colon, tail = given.rpartition(":")
        has_port = colon and tail.isdigit() and (":" not in host or host.endswith("]"))
        return given if has_port else f"{given}:{port}"
    host = settings.nbd_host
    if ipaddress.ip_address(host).is_unspecified:
        host = socket.getfqdn()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _wait_listening(process: subprocess.Popen[bytes], host: str, port: int, log: Path) -> str:
    """'' once nbdkit accepts connections, else why it did not."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return log.read_text(errors="replace").strip()[-300:]
        try:
            with socket.create_connection((host, port), timeout=1):
                return ""
        except OSError:
            time.sleep(0.02)
    process.kill()
    process.wait()
    return "it did not listen in time"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
