"""End-to-end benchmark: OpenCBR as a user drives it, against restic and borg on the same image.

    uv run python bench/e2e_bench.py [--size 1G] [--seed 1] [--s3] [--skip-borg]
                                     [--workdir bench/work/e2e]

The image and its 1 % mutation are backup_bench.py's (`gen_image.py`, seed `--seed` and
`--seed + 1`). OpenCBR runs as `opencbr serve` in its own process (SQLite, embedded job
workers; with `--s3` its chunk store is on the Swift S3 store of
`../shared/scripts/start-swift-s3.sh`). Each step is what a user does, timed from the first
call to the last answer:

- `opencbr disk import` of the image, and `opencbr disk export` of a restored disk: the whole
  command (interpreter start-up included), against `cp` + `sync` of the same file;
- full backup: CreateCheckpoint, then ListBackups until the backup is `available` (SDK);
- incremental with the change map: the mutation written through the data API (not timed),
  then the same;
- restore to a new disk: CreateVolume with `backup_id`, then ShowVolume until `available`;
- restore onto an existing disk: RestoreBackup, then ShowVolume until `available`;
- fixed latency: the same calls on a disk holding 1 MiB (median of five).

restic and borg run as in backup_bench.py (local repositories; with `--s3`, restic's S3
backend on the same Swift store, and no borg), every restore charged an fsync. Prints one
table, the ratios against the targets, the latencies and the server's peak RSS.
It is a benchmark, not a test: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkevs.v2 import model as evs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backup_bench import (
    ENV,
    REPO,
    Run,
    bench_borg,
    bench_restic,
    changed_extents,
    ensure_tools,
    fsync_file,
    make_images,
    run,
    run_measured,
    sha256_file,
    warm,
)
from e2e_server import SWIFT, Service, free_port, s3_environment, wait_until

MiB = 1 << 20
LATENCY_RUNS = 5


@dataclass
class Result:
    name: str
    full: float = 0.0
    incr_map: float = 0.0
    incr: float = 0.0
    restore_new: float = 0.0
    restore_existing: float = 0.0
    restore_ok: bool = False
    extra: dict[str, float] = field(default_factory=dict)


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    os.sync()
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


# ------------------------------------------------------------------ OpenCBR, as a user


class Steps:
    """The SDK calls of one tenant, each returning when its result is usable."""

    def __init__(self, service: Service) -> None:
        self.s = service

    def vault(self, disk_id: str) -> str:
        vault = cbr.VaultCreate(
            name=f"v-{disk_id[:8]}",
            resources=[cbr.ResourceCreate(id=disk_id, type="OS::Cinder::Volume")],
            billing=cbr.BillingCreate(
                object_type="disk",
                protect_type="backup",
                consistent_level="crash_consistent",
                size=100,
            ),
        )
        made = self.s.cbr.create_vault(cbr.CreateVaultRequest(body=cbr.VaultCreateReq(vault=vault)))
        return str(made.vault.id)

    def backup(self, vault_id: str) -> str:
        """CreateCheckpoint, then ListBackups until the backup is available."""
        checkpoint = self.s.cbr.create_checkpoint(
            cbr.CreateCheckpointRequest(
                body=cbr.VaultBackupReq(
                    checkpoint=cbr.VaultBackup(
                        vault_id=vault_id, parameters=cbr.CheckpointParam(incremental=True)
                    )
                )
            )
        ).checkpoint
        listed = wait_until(
            lambda: (
                self.s.cbr.list_backups(cbr.ListBackupsRequest(checkpoint_id=checkpoint.id)).backups
            ),
            lambda b: len(b) == 1 and b[0].status in ("available", "error"),
        )
        if listed[0].status != "available":
            raise SystemExit(f"backup {listed[0].id} ended {listed[0].status}")
        return str(listed[0].id)

    def disk_status(self, disk_id: str) -> str:
        volume = self.s.evs.show_volume(evs.ShowVolumeRequest(volume_id=disk_id)).volume
        return str(volume.status)

    def _until_available(self, disk_id: str) -> None:
        status = wait_until(lambda: self.disk_status(disk_id), lambda s: "ing" not in s)
        if status != "available":
            raise SystemExit(f"disk {disk_id} ended {status}")

    def disk_from_backup(self, backup_id: str) -> str:
        """CreateVolume with backup_id, then ShowVolume until available."""
        option = evs.CreateVolumeOption(
            availability_zone="az1", volume_type="SAS", backup_id=backup_id, name="restored"
        )
        made = self.s.evs.create_volume(
            evs.CreateVolumeRequest(body=evs.CreateVolumeRequestBody(volume=option))
        )
        disk_id = str(made.volume_ids[0])
        self._until_available(disk_id)
        return disk_id

    def restore_onto(self, backup_id: str, disk_id: str) -> None:
        """RestoreBackup onto an existing disk, then ShowVolume until available."""
        self.s.cbr.restore_backup(
            cbr.RestoreBackupRequest(
                backup_id=backup_id,
                body=cbr.BackupRestoreReq(restore=cbr.BackupRestore(volume_id=disk_id)),
            )
        )
        self._until_available(disk_id)

    def write_extents(self, disk_id: str, image: Path, extents: list[tuple[int, int]]) -> None:
        path = f"/v2/{self.s.project}/cloudvolumes/{disk_id}/data"
        with open(image, "rb", buffering=0) as f:
            for offset, length in extents:
                data = os.pread(f.fileno(), length, offset)
                self.s.data.upload(path, [data], len(data), {"offset": offset})


def import_disk(service: Service, image: Path) -> tuple[Run, str]:
    result = run_measured(
        [*_cli(), "disk", "import", str(image), "--name", image.stem, "--json"],
        env=service.cli_env,
    )
    return result, str(json.loads(result.out[result.out.index("{") :])["id"])


def export_disk(service: Service, disk_id: str, target: Path, length: int) -> Run:
    target.unlink(missing_ok=True)
    return run_measured(
        [*_cli(), "disk", "export", disk_id, str(target), "--length", str(length), "--json"],
        env=service.cli_env,
    )


def _cli() -> list[str]:
    return [str(Path(sys.executable).parent / "opencbr")]


def copy_and_sync(source: Path, target: Path) -> Run:
    """`cp` + `sync` of the file: what a disk import or export is measured against."""
    target.unlink(missing_ok=True)
    result = run_measured(["sh", "-c", f"cp '{source}' '{target}' && sync '{target}'"])
    target.unlink()
    return result


def bench_opencbr(
    service: Service, work: Path, base: Path, mutated: Path, sha: str
) -> tuple[Result, dict[str, Any]]:
    steps = Steps(service)
    res = Result("OpenCBR")
    size = base.stat().st_size
    io: dict[str, Any] = {}
    io["cp+sync (import)"] = copy_and_sync(base, work / "cp-target.img").seconds
    imported, disk = import_disk(service, base)
    io["disk import"] = imported.seconds
    vault = steps.vault(disk)
    res.full, full_id = timed(lambda: steps.backup(vault))
    steps.write_extents(disk, mutated, changed_extents(base, mutated))
    res.incr_map, _ = timed(lambda: steps.backup(vault))
    res.restore_new, restored = timed(lambda: steps.disk_from_backup(full_id))
    out = work / "exported.img"
    io["cp+sync (export)"] = copy_and_sync(base, work / "cp-target.img").seconds
    io["disk export"] = export_disk(service, restored, out, size).seconds
    new_ok = sha256_file(out) == sha
    res.restore_existing, _ = timed(lambda: steps.restore_onto(full_id, disk))
    export_disk(service, disk, out, size)
    res.restore_ok = new_ok and sha256_file(out) == sha
    out.unlink()
    return res, io


def latencies(service: Service, work: Path) -> dict[str, list[float]]:
    """Each call on a disk holding 1 MiB (what `disk import` of a 1 MiB file makes)."""
    steps = Steps(service)
    small = work / "one-mib.img"
    small.write_bytes(os.urandom(MiB))
    found: dict[str, list[float]] = {k: [] for k in ("import", "backup", "from backup", "restore")}
    found["export"] = []
    disk = ""
    for _ in range(LATENCY_RUNS):
        imported, disk = import_disk(service, small)
        found["import"].append(imported.seconds)
    vault = steps.vault(disk)
    backup_id = ""
    for _ in range(LATENCY_RUNS):
        seconds, backup_id = timed(lambda: steps.backup(vault))
        found["backup"].append(seconds)
    for _ in range(LATENCY_RUNS):
        found["from backup"].append(timed(lambda: steps.disk_from_backup(backup_id))[0])
        found["restore"].append(timed(lambda: steps.restore_onto(backup_id, disk))[0])
        found["export"].append(export_disk(service, disk, work / "small-out.img", MiB).seconds)
    return found


# ------------------------------------------------------------------ restic on S3


def bench_restic_s3(work: Path, base: Path, mutated: Path, sha: str) -> Result:
    """restic with its S3 backend on the Swift store: full, incremental, restore + fsync.

    restic's S3 client signs uploads over plain HTTP with aws-chunked payloads, which Swift's
    s3api refuses; over HTTPS it sends them whole. So restic reaches the store through a TLS
    relay (socat) on loopback: TLS costs it some CPU that OpenCBR, on plain HTTP, does not pay.
    """
    with tls_relay(work, SWIFT["endpoint"].removeprefix("http://")) as (endpoint, cacert):
        return _restic_s3(work, base, mutated, sha, endpoint, cacert)


@contextmanager
def tls_relay(work: Path, target: str) -> Iterator[tuple[str, Path]]:
    """A TLS endpoint on loopback relaying to `target` (host:port), with its certificate."""
    cert, key = work / "relay-cert.pem", work / "relay-key.pem"
    run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ]
    )  # fmt: skip
    port = free_port()
    relay = subprocess.Popen(
        [
            "socat",
            f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={cert},key={key},verify=0",
            f"TCP:{target}",
        ]
    )
    time.sleep(0.5)
    try:
        yield f"https://127.0.0.1:{port}", cert
    finally:
        relay.terminate()
        relay.wait()


def _restic_s3(
    work: Path, base: Path, mutated: Path, sha: str, endpoint: str, cacert: Path
) -> Result:
    repo = f"s3:{endpoint}/restic-bench-{uuid.uuid4().hex[:8]}"
    env = {
        **ENV,
        "AWS_ACCESS_KEY_ID": SWIFT["access_key"],
        "AWS_SECRET_ACCESS_KEY": SWIFT["secret_key"],
        "AWS_DEFAULT_REGION": SWIFT["region"],
    }
    restic = ["restic", "--cacert", str(cacert)]
    src, out = work / "src", work / "restic-s3-restore"
    src.mkdir(exist_ok=True)
    disk = src / "disk.img"
    shutil.rmtree(out, ignore_errors=True)
    run([*restic, "-r", repo, "init"], env=env)
    res = Result("restic (S3)")
    disk.unlink(missing_ok=True)
    os.link(base, disk)
    res.full = run_measured([*restic, "-r", repo, "backup", "--quiet", str(disk)], env=env).seconds
    disk.unlink()
    os.link(mutated, disk)
    res.incr = run_measured([*restic, "-r", repo, "backup", "--quiet", str(disk)], env=env).seconds
    snaps = json.loads(run([*restic, "-r", repo, "snapshots", "--json"], env=env))
    first = sorted(snaps, key=lambda s: s["time"])[0]["id"]
    restore = run_measured([*restic, "-r", repo, "restore", first, "--target", str(out)], env=env)
    restored = out / str(disk).lstrip("/")
    res.restore_new = restore.seconds + fsync_file(restored)
    res.restore_ok = sha256_file(restored) == sha
    shutil.rmtree(out, ignore_errors=True)
    return res


def from_backup_bench(tool: Any) -> Result:
    return Result(
        tool.name,
        full=tool.full.seconds,
        incr=tool.incr.seconds,
        restore_new=tool.restore.seconds,
        restore_ok=tool.restore_ok,
    )


# ------------------------------------------------------------------ the report


def report(
    results: list[Result],
    io: dict[str, float],
    lat: dict[str, list[float]],
    rss: float,
    s3: bool,
    size: int,
) -> None:
    ours, restic = results[0], results[1]
    print()
    print(f"image {size / 2**30:.2f} GiB, store {'S3 (Swift)' if s3 else 'local directory'}")
    print()
    print("| step | " + " | ".join(r.name for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    rows: list[tuple[str, Callable[[Result], float]]] = [
        ("full backup (s)", lambda r: r.full),
        ("1 % incremental, change map (s)", lambda r: r.incr_map),
        ("1 % incremental, no map (s)", lambda r: r.incr),
        ("restore, new disk / file (+ sync) (s)", lambda r: r.restore_new),
        ("restore onto the existing disk (s)", lambda r: r.restore_existing),
    ]
    for label, cell in rows:
        print(
            f"| {label} | "
            + " | ".join(f"{cell(r):.2f}" if cell(r) else "-" for r in results)
            + " |"
        )
    print(
        "| restores match sha256 | "
        + " | ".join("yes" if r.restore_ok else "NO" for r in results)
        + " |"
    )
    print()
    print("| data command (whole command) | s | cp + sync (s) | share |")
    print("|---|---:|---:|---:|")
    for verb in ("import", "export"):
        mine, theirs = io[f"disk {verb}"], io[f"cp+sync ({verb})"]
        print(f"| `opencbr disk {verb}` | {mine:.2f} | {theirs:.2f} | {theirs / mine:.0%} |")
    print()
    print(f"| call on a 1 MiB disk (median of {LATENCY_RUNS}) | ms | min-max ms |")
    print("|---|---:|---:|")
    for name, values in lat.items():
        print(
            f"| {name} | {statistics.median(values) * 1000:.0f} "
            f"| {min(values) * 1000:.0f}-{max(values) * 1000:.0f} |"
        )
    print()
    factor = 1.5 if s3 else 2.0
    checks = [
        (f"full backup >= {factor}x restic", restic.full / ours.full, factor),
        (f"restore, new disk >= {factor}x restic", restic.restore_new / ours.restore_new, factor),
    ]
    if not s3:
        checks += [
            ("incr. with map >= 20x restic incr.", restic.incr / ours.incr_map, 20.0),
            ("restore onto disk >= 2x restic", restic.restore_new / ours.restore_existing, 2.0),
            ("disk import >= 50 % of cp+sync", io["cp+sync (import)"] / io["disk import"], 0.5),
            ("disk export >= 50 % of cp+sync", io["cp+sync (export)"] / io["disk export"], 0.5),
        ]
    for name in ("backup", "from backup"):
        checks.append((f"{name} of 1 MiB < 100 ms", 0.1 / statistics.median(lat[name]), 1.0))
    checks.append(("server peak RSS < 500 MB", 500 / rss, 1.0))
    print(f"server peak RSS {rss:.0f} MB")
    print("targets:")
    for label, value, target in checks:
        print(f"  {label:40} {value:8.2f}  {'met' if value >= target else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gen", default="../shared/bench/gen_image.py")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "work" / "e2e")
    parser.add_argument("--s3", action="store_true", help="chunk store and restic on Swift S3")
    parser.add_argument("--skip-borg", action="store_true")
    args = parser.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    base, mutated, meta = make_images((REPO / args.gen).resolve(), work, args.size, args.seed)
    sha = meta["base_sha256"]
    warm(base, mutated)
    ensure_tools(True)
    if args.s3 and shutil.which("socat") is None:
        run(["apt-get", "install", "-y", "-q", "socat"])
    extra_env: dict[str, str] = {}
    if args.s3:
        subprocess.run(["bash", str(REPO / "scripts" / "setup-swift.sh")], check=True)
        extra_env = s3_environment(f"opencbr-bench-{uuid.uuid4().hex[:8]}")
    data_dir = work / "service"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir()
    service = Service(data_dir, extra_env)
    try:
        ours, io = bench_opencbr(service, work, base, mutated, sha)
        lat = latencies(service, work)
        rss = service.peak_rss_mb()
    finally:
        service.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    results = [ours]
    if args.s3:
        results.append(bench_restic_s3(work, base, mutated, sha))
    else:
        results.append(from_backup_bench(bench_restic(work, base, mutated, sha)))
        if not args.skip_borg:
            results.append(from_backup_bench(bench_borg(work, base, mutated, sha)))
    report(results, io, lat, rss, args.s3, base.stat().st_size)


if __name__ == "__main__":
    main()
