"""The NBD server of a process: nbdkit (the protocol engine) with our plugin, and the broker.

Started on first use (`nbd_server`) in any process that opens an export, stopped with the
process (`stop_nbd_server`; nbdkit also runs with ``--exit-with-parent``). It listens on
`Settings.nbd_host` (loopback) and `Settings.nbd_port`, or on a free port when that is 0.
Several processes may each run one: an export's URI names the server of the process that
opened it, and every process's broker resolves any export from the database.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from opencbr.core.context import Part, Runtime

from ..errors import NbdUnavailable
from .broker import Broker

__all__ = ["NbdServer", "nbd_server", "stop_nbd_server"]

PLUGIN = Path(__file__).with_name("nbdkit_plugin.py")
NBDKIT_THREADS = 16
START_SECONDS = 15.0
_SERVER: Part[NbdServer] = Part("evs.nbd_server")
_start_lock = threading.Lock()


@dataclass
class NbdServer:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    broker: Broker

    @property
    def address(self) -> str:
        """host:port as a URI writes it (an IPv6 address in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
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
        if server is not None:
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
    nbdkit = _nbdkit()
    settings = runtime.settings
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
            return NbdServer(settings.nbd_host, port, process, broker)
    broker.stop()
    raise NbdUnavailable(reason=f"nbdkit did not start ({reason})")


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
