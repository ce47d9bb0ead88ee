"""Benchmark of ranged disk writes and reads through the HTTP API, against the driver alone.

    uv run python bench/api_write_bench.py [--total 256M] [--sizes 1M,4M,16M,64M] [--workdir DIR]

Starts a real API server (uvicorn, one process of its own, SQLite in a temporary data
directory), creates a tenant and a plain and an encrypted 2 GB disk, then for each request
size writes `--total` bytes sequentially with signed, streamed PUT `.../data` requests (the
CLI's client, `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`) and reads them back with GET. The same
writes straight into a `LocalVolumeDriver` give the baseline; `ratio` is API / driver. Rates
are MB/s (10^6 bytes per second), best of `--runs`. Prints a table; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from opencbr.api.runtime import build_runtime
from opencbr.cli.client import Client, Profile
from opencbr.core.context import Runtime
from opencbr.core.jobs import run_one
from opencbr.core.settings import Settings
from opencbr.evs.jobs import handlers as evs_handlers
from opencbr.evs.volumes import DiskKey, LocalVolumeDriver
from opencbr.iam import service as iam
from opencbr.iam.agencies import EVS_KMS_AGENCY, create_agency

MiB = 1 << 20
SERVER = """
import sys, uvicorn
from opencbr.api.app import create_app
from opencbr.api.runtime import build_runtime
from opencbr.core.settings import Settings
runtime = build_runtime(Settings(data_dir=sys.argv[1]))
uvicorn.run(create_app(runtime), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": MiB, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].isalpha() else int(text)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(data_dir), str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


def _tenant(runtime: Runtime, url: str) -> Client:
    with runtime.database.unit_of_work() as session:
        creds = iam.create_tenant(
            session, runtime.root_key, runtime.settings.regions, "bench", ["region-1"]
        )
        create_agency(session, creds.domain_id, EVS_KMS_AGENCY, "op_svc_evs")
    profile = Profile(url, creds.access_key, creds.secret_key, creds.projects["region-1"])
    return Client(profile, timeout=300)


def _disk(runtime: Runtime, api: Client, encrypted: bool) -> str:
    volume: dict[str, object] = {
        "name": "bench",
        "size": 2,
        "availability_zone": "az1",
        "volume_type": "SSD",
    }
    if encrypted:
        volume["metadata"] = {"__system__encrypted": "1"}
    answer = api.request("POST", f"/v2.1/{api.project()}/cloudvolumes", {"volume": volume})
    handlers = evs_handlers(runtime)
    while run_one(runtime.database, handlers, "bench"):
        pass
    disk_id: str = answer["volume_ids"][0]
    return disk_id


def _best(runs: int, action: Callable[[], None], total: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return total / best / 1e6


def _api_write(api: Client, disk_id: str, data: bytes, total: int) -> Callable[[], None]:
    path = f"/v2/{api.project()}/cloudvolumes/{disk_id}/data"

    def run() -> None:
        for offset in range(0, total, len(data)):
            last = offset + len(data) >= total
            api.upload(path, [data], len(data), {"offset": offset, "sync": last})

    return run


def _api_read(api: Client, disk_id: str, size: int, total: int) -> Callable[[], None]:
    path = f"/v2/{api.project()}/cloudvolumes/{disk_id}/data"

    def run() -> None:
        for offset in range(0, total, size):
            for _ in api.download(path, {"offset": offset, "length": size}):
                pass

    return run


def _driver_write(root: Path, encrypted: bool, data: bytes, total: int) -> Callable[[], None]:
    driver = LocalVolumeDriver(root)
    key = DiskKey.generate() if encrypted else None
    volume_id = f"base-{'enc' if encrypted else 'plain'}-{len(data)}"
    driver.create(volume_id, 2 << 30, encryption=key)

    def run() -> None:
        for offset in range(0, total, len(data)):
            driver.write(volume_id, offset, data)
        driver.flush(volume_id)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", default="256M", help="bytes written per measurement")
    parser.add_argument("--sizes", default="1M,4M,16M,64M", help="request sizes")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="where the data directory goes")
    args = parser.parse_args()
    total = _size(args.total)
    sizes = [_size(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        data_dir = Path(tmp) / "data"
        runtime = build_runtime(Settings(data_dir=data_dir))
        process, url = _start_server(data_dir)
        try:
            api = _tenant(runtime, url)
            print(
                f"{'disk':<10} {'request':>8} {'API write':>10} {'driver':>10} "
                f"{'ratio':>6} {'API read':>10}"
            )
            for encrypted in (False, True):
                disk_id = _disk(runtime, api, encrypted)
                for size in sizes:
                    data = os.urandom(size)
                    wrote = _best(args.runs, _api_write(api, disk_id, data, total), total)
                    base = _best(
                        args.runs, _driver_write(Path(tmp) / "base", encrypted, data, total), total
                    )
                    read = _best(args.runs, _api_read(api, disk_id, size, total), total)
                    kind = "encrypted" if encrypted else "plain"
                    print(
                        f"{kind:<10} {size // MiB:>7}M {wrote:>9.0f}  {base:>9.0f}  "
                        f"{wrote / base:>6.2f} {read:>9.0f}"
                    )
        finally:
            process.terminate()
            process.wait(timeout=30)
            runtime.database.dispose()


if __name__ == "__main__":
    main()
