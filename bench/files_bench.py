"""Benchmark of file-level restore: the first and further listings of a backup's files, and a
1 GiB file's download, against restoring the whole disk.

    uv run python bench/files_bench.py [--size-gb 10] [--file-mib 1024] [--workdir DIR]

One process runs the service as `opencbr serve` does (API, job workers, NBD server; SQLite and
a local store in a scratch directory). An ext4 filesystem of `--size-gb` (sparse) holding a
random file of `--file-mib` and a few small files is imported into a disk (no partition table)
and backed up. Then, through the API: the first listing (the backup's file browser starts),
ten further listings (median and worst), the download of the big file (compared by SHA-256),
and, for comparison, a new disk from the backup until it is `available` (the whole disk
restored). Prints the figures; it is not a test.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from opencbr.api.app import create_app
from opencbr.api.runtime import build_runtime, start_workers
from opencbr.cli.client import Client, Profile
from opencbr.core.settings import Settings
from opencbr.iam import service as iam

sys.path.insert(0, str(Path(__file__).resolve().parent))
from instant_restore_bench import _free_port, _job, _wait

MiB = 1 << 20
GiB = 1 << 30
OPENCBR = str(Path(sys.executable).parent / "opencbr")


def _image(work: Path, size_gb: int, file_mib: int) -> tuple[Path, str]:
    tree = work / "tree"
    (tree / "etc").mkdir(parents=True)
    for i in range(50):
        (tree / "etc" / f"conf-{i}.txt").write_text(f"setting {i}\n")
    digest = hashlib.sha256()
    with (tree / "big.bin").open("wb") as handle:
        for _ in range(file_mib):
            chunk = os.urandom(MiB)
            digest.update(chunk)
            handle.write(chunk)
    image = work / "disk.img"
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), f"{size_gb}G"], check=True
    )
    shutil.rmtree(tree)
    return image, digest.hexdigest()


def _backup(env: dict[str, str], api: Client, image: Path, size_gb: int) -> str:
    made = subprocess.run(
        [OPENCBR, "disk", "import", str(image), "--name", "files", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    disk = made.stdout.split('"id": "')[1].split('"')[0]
    p = api.project()
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


def _timed_listing(api: Client, base: str, path: str) -> float:
    started = time.monotonic()
    api.request("GET", base, params={"path": path})
    return time.monotonic() - started


def _download(api: Client, base: str, path: str) -> tuple[float, int, str]:
    digest = hashlib.sha256()
    size = 0
    started = time.monotonic()
    for chunk in api.download(f"{base}/content", {"path": path}):
        digest.update(chunk)
        size += len(chunk)
    return time.monotonic() - started, size, digest.hexdigest()


def _restore_disk(api: Client, backup_id: str) -> float:
    p = api.project()
    volume = {"name": "whole", "backup_id": backup_id, "availability_zone": "az1"}
    volume["volume_type"] = "SAS"
    started = time.monotonic()
    made = api.request("POST", f"/v2.1/{p}/cloudvolumes", {"volume": volume})
    assert _job(api, made["job_id"])["status"] == "SUCCESS"
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=int, default=10)
    parser.add_argument("--file-mib", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="files-bench-", dir=args.workdir))
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
        url = f"http://127.0.0.1:{port}"
        project = creds.projects["region-1"]
        api = Client(Profile(url, creds.access_key, creds.secret_key, project), timeout=600)
        env = {
            **os.environ,
            "OPENCBR_ENDPOINT": url,
            "OPENCBR_ACCESS_KEY": creds.access_key,
            "OPENCBR_SECRET_KEY": creds.secret_key,
            "OPENCBR_PROJECT_ID": project,
            "XDG_CONFIG_HOME": str(work / "config"),
        }
        image, expected = _image(work, args.size_gb, args.file_mib)
        backup_id = _backup(env, api, image, args.size_gb)
        image.unlink()
        base = f"/opencbr/v1/{project}/backups/{backup_id}/files"
        first = _timed_listing(api, base, "/disk")
        further = [_timed_listing(api, base, p) for p in ["/disk", "/disk/etc"] * 5]
        seconds, size, digest = _download(api, base, "/disk/big.bin")
        assert (size, digest) == (args.file_mib * MiB, expected), "the download differs"
        restore = _restore_disk(api, backup_id)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        pool.stop()
        runtime.database.dispose()
        shutil.rmtree(work, ignore_errors=True)
    rate = size / seconds / 1e6
    print(f"backup of a {args.size_gb} GiB ext4 disk holding a {args.file_mib} MiB file")
    print("| measure | value | target |")
    print("| --- | ---: | ---: |")
    print(f"| first listing (file browser starts) | {first:.2f} s | < 30 s |")
    print(
        f"| further listings, median (worst of 10) | {statistics.median(further) * 1000:.0f} ms "
        f"({max(further) * 1000:.0f} ms) | < 300 ms |"
    )
    download = f"{rate:.0f} MB/s ({seconds:.1f} s)"
    print(f"| download of the {args.file_mib} MiB file | {download} | ≥ 50 MB/s |")
    print(f"| whole disk restored (a new disk from the backup) | {restore:.1f} s | |")


if __name__ == "__main__":
    main()
