"""Benchmark of instant restore: from CreateVolume (a disk from a backup) to the first correct
read of the backup's last MiB over NBD, against the time until the copy ends (`available`).

    uv run python bench/instant_restore_bench.py [--size-gb 4] [--data-mib 512]

One process runs the service as `opencbr serve` does (API, job workers, NBD server; SQLite and
a local store in a scratch directory). A tenant's disk of `--size-gb` gets `--data-mib` of
random data at its start and a random last MiB, and is backed up. Then, timed: CreateVolume
with the backup, open the new disk's NBD export (API), connect with libnbd and read the last
MiB (compared); and separately, the same through the CLI (`backup to-disk`, `disk nbd open`,
then a libnbd read: process start-ups included). Prints the figures; it is not a test.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from opencbr.api.app import create_app
from opencbr.api.runtime import build_runtime, start_workers
from opencbr.cli.client import Client, Profile
from opencbr.core.settings import Settings
from opencbr.iam import service as iam
from opencbr.iam.agencies import EVS_KMS_AGENCY, create_agency

MiB = 1 << 20
GiB = 1 << 30
OPENCBR = str(Path(sys.executable).parent / "opencbr")


def _libnbd() -> Any:
    sys.path.append("/usr/lib/python3/dist-packages")
    import nbd  # type: ignore[import-not-found]

    return nbd


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(probe: Any, done: Any, timeout: float = 1800) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(repr(value))
        time.sleep(0.05)


def _job(api: Client, job_id: str) -> dict[str, Any]:
    return _wait(
        lambda: api.request("GET", f"/v1/{api.project()}/jobs/{job_id}"),
        lambda j: j["status"] in ("SUCCESS", "FAIL"),
    )


def _backup(api: Client, size_gb: int, data_mib: int, last: bytes) -> str:
    p = api.project()
    volume = {"name": "src", "size": size_gb, "availability_zone": "az1", "volume_type": "SAS"}
    made = api.request("POST", f"/v2.1/{p}/cloudvolumes", {"volume": volume})
    _job(api, made["job_id"])
    disk = made["volume_ids"][0]
    for offset in range(0, data_mib * MiB, 64 * MiB):
        chunk = os.urandom(min(64 * MiB, data_mib * MiB - offset))
        api.upload(f"/v2/{p}/cloudvolumes/{disk}/data", [chunk], len(chunk), {"offset": offset})
    end = size_gb * GiB - MiB
    api.upload(f"/v2/{p}/cloudvolumes/{disk}/data", [last], MiB, {"offset": end, "sync": "true"})
    billing = {
        "object_type": "disk",
        "protect_type": "backup",
        "consistent_level": "crash_consistent",
        "size": 4 * size_gb,
    }
    resources = [{"id": disk, "type": "OS::Cinder::Volume"}]
    vault = api.request(
        "POST",
        f"/v3/{p}/vaults",
        {"vault": {"name": "v", "resources": resources, "billing": billing}},
    )["vault"]
    checkpoint = api.request(
        "POST",
        f"/v3/{p}/checkpoints",
        {"checkpoint": {"vault_id": vault["id"], "parameters": {"name": "b"}}},
    )["checkpoint"]
    backups = _wait(
        lambda: api.request("GET", f"/v3/{p}/backups", params={"checkpoint_id": checkpoint["id"]})[
            "backups"
        ],
        lambda b: len(b) == 1 and b[0]["status"] in ("available", "error"),
    )
    assert backups[0]["status"] == "available", backups
    return str(backups[0]["id"])


def _read_last(uri: str, size: int) -> bytes:
    h = _libnbd().NBD()
    h.connect_uri(uri)
    data: bytes = h.pread(MiB, size - MiB)
    h.shutdown()
    return data


def through_api(api: Client, backup_id: str, size: int, last: bytes) -> tuple[float, float]:
    p = api.project()
    started = time.monotonic()
    volume = {
        "name": "instant",
        "backup_id": backup_id,
        "availability_zone": "az1",
        "volume_type": "SAS",
    }
    made = api.request("POST", f"/v2.1/{p}/cloudvolumes", {"volume": volume})
    disk = made["volume_ids"][0]
    uri = api.request("POST", f"/v2/{p}/cloudvolumes/{disk}/nbd")["export"]["uri"]
    assert _read_last(uri, size) == last
    first = time.monotonic() - started
    assert _job(api, made["job_id"])["status"] == "SUCCESS"
    return first, time.monotonic() - started


def through_cli(env: dict[str, str], backup_id: str, size: int, last: bytes) -> float:
    started = time.monotonic()
    made = subprocess.run(
        [OPENCBR, "backup", "to-disk", backup_id, "--name", "cli", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    disk = json.loads(made.stdout)["volume_id"]
    opened = subprocess.run(
        [OPENCBR, "disk", "nbd", "open", disk, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert _read_last(json.loads(opened.stdout)["uri"], size) == last
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=int, default=4)
    parser.add_argument("--data-mib", type=int, default=512)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="instant-bench-", dir=args.workdir))
    settings = Settings(data_dir=work / "data", root_key=base64.b64encode(os.urandom(32)).decode())
    runtime = build_runtime(settings)
    pool = start_workers(runtime, threads=2)
    pool.poll_seconds = 0.05
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        _wait(lambda: server.started, bool, 30)
        with runtime.database.unit_of_work() as session:
            creds = iam.create_tenant(
                session, runtime.root_key, settings.regions, "bench", ["region-1"]
            )
            create_agency(session, creds.domain_id, EVS_KMS_AGENCY, "op_svc_evs")
        url = f"http://127.0.0.1:{port}"
        project = creds.projects["region-1"]
        api = Client(Profile(url, creds.access_key, creds.secret_key, project))
        last = os.urandom(MiB)
        backup_id = _backup(api, args.size_gb, args.data_mib, last)
        size = args.size_gb * GiB
        first, full = through_api(api, backup_id, size, last)
        env = {
            **os.environ,
            "OPENCBR_ENDPOINT": url,
            "OPENCBR_ACCESS_KEY": creds.access_key,
            "OPENCBR_SECRET_KEY": creds.secret_key,
            "OPENCBR_PROJECT_ID": project,
            "XDG_CONFIG_HOME": str(work / "config"),
        }
        cli = through_cli(env, backup_id, size, last)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        pool.stop()
        runtime.database.dispose()
        shutil.rmtree(work, ignore_errors=True)
    print(f"backup of a {args.size_gb} GiB disk ({args.data_mib} MiB of data + its last MiB)")
    print("| measure | seconds |")
    print("| --- | ---: |")
    print(f"| CreateVolume → NBD open → last MiB read and correct (API) | {first:.2f} |")
    print(f"| CreateVolume → the copy ends (`available`) | {full:.2f} |")
    print(
        f"| `backup to-disk` → `disk nbd open` → last MiB read (CLI, start-ups included) "
        f"| {cli:.2f} |"
    )


if __name__ == "__main__":
    main()
