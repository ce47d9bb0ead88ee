"""The service as e2e_bench.py drives it: a running `opencbr serve` (its own process, SQLite,
embedded job workers), a tenant made with `opencbr admin tenant create`, the official SDK's
CBR and EVS clients, the CLI with the tenant's environment, and the server's peak RSS."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from huaweicloudsdkcbr.v1 import CbrClient
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkevs.v2 import EvsClient

from opencbr.cli.client import Client, Profile

OPENCBR = str(Path(sys.executable).parent / "opencbr")
# A poll asks again after 5 ms, then less and less often, up to every 50 ms: a short call is
# seen done at most 5 ms late, and a long one is not slowed by the polls (each request takes
# the server's CPU and GIL from the job: polling every 5 ms made a 1 GiB restore 2x slower).
POLL_FIRST, POLL_GROWTH, POLL_MAX = 0.005, 1.25, 0.05

SWIFT = {
    "endpoint": "http://127.0.0.1:18080",
    "access_key": "test:tester",
    "secret_key": "testing",
    "region": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(probe: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 1800) -> Any:
    deadline = time.monotonic() + timeout
    delay = POLL_FIRST
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(repr(value))
        time.sleep(delay)
        delay = min(POLL_MAX, delay * POLL_GROWTH)


def s3_environment(bucket: str) -> dict[str, str]:
    """The server's settings for a chunk store on the Swift S3 store."""
    return {
        "OPENCBR_STORE_URL": f"s3://{bucket}/store",
        "OPENCBR_S3_ENDPOINT": SWIFT["endpoint"],
        "OPENCBR_S3_REGION": SWIFT["region"],
        "OPENCBR_S3_ACCESS_KEY": SWIFT["access_key"],
        "OPENCBR_S3_SECRET_KEY": SWIFT["secret_key"],
    }


class Service:
    """`opencbr serve` on a free loopback port, with one tenant; stopped by `close`."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str]) -> None:
        self.data_dir = data_dir
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCBR_", "VIRTUAL_ENV"))}
        self.server_env = {**env, **extra_env, "OPENCBR_DATA_DIR": str(data_dir)}
        made = subprocess.run(
            [OPENCBR, "admin", "tenant", "create", "bench", "--region", "region-1", "--json"],
            env=self.server_env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.creds = json.loads(made.stdout)
        self.project = self.creds["projects"]["region-1"]
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(data_dir / "serve.log", "wb")  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(
            [OPENCBR, "serve", "--host", "127.0.0.1", "--port", self.url.rsplit(":", 1)[1]],
            env=self.server_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._up, bool, 120)
        self.cli_env = {
            **env,
            "OPENCBR_ENDPOINT": self.url,
            "OPENCBR_ACCESS_KEY": self.creds["access_key"],
            "OPENCBR_SECRET_KEY": self.creds["secret_key"],
            "OPENCBR_PROJECT_ID": self.project,
            "XDG_CONFIG_HOME": str(data_dir / "cli-config"),
        }
        self.data = Client(
            Profile(self.url, self.creds["access_key"], self.creds["secret_key"], self.project)
        )
        self.cbr = self._sdk(CbrClient)
        self.evs = self._sdk(EvsClient)

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise SystemExit(f"opencbr serve exited; see {self.data_dir / 'serve.log'}")
        try:
            return httpx.get(self.url + "/", timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    def _sdk(self, client_class: Any) -> Any:
        config = HttpConfig.get_default_config()
        config.timeout = (5, 600)
        credentials = BasicCredentials(
            self.creds["access_key"], self.creds["secret_key"], self.project
        )
        return (
            client_class.new_builder()
            .with_http_config(config)
            .with_credentials(credentials)
            .with_endpoints([self.url])
            .build()
        )

    def peak_rss_mb(self) -> float:
        """The server process's peak resident set (VmHWM), MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [OPENCBR, *args], env=self.cli_env, capture_output=True, text=True, check=True
        )

    def close(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
