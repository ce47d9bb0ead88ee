"""Backup benchmark: OpenCBR's chunk store against restic and borg on the same image, same run.

    uv run python bench/backup_bench.py [--size 2G] [--gen ../shared/bench/gen_image.py]
                                        [--workdir bench/work] [--block-sizes 32K,64K,128K]

Generates a deterministic mixed disk image with the shared generator and a copy with 1 % of
it rewritten (scattered 4-64 KiB writes), computes the changed extents by comparing the two,
installs restic and borgbackup from Debian when missing, and times for each tool: a full
backup, an incremental backup of the changed image (OpenCBR with the change map and without
it; restic and borg have no change map; each incremental the median of three, every tool
starting from a copy of its repository after the full backup), and a restore of the full
backup into a new file. Every timed command runs in its own process, after an `os.sync()`;
its peak RSS and CPU time come from GNU time. Restores are
checked against the generator's sha256. Images stay in the page cache (the machine has room),
so all tools read at the same speed. Prints one table, the ratios against the targets, the
machine's limits, and a thread-versus-process comparison for the block pipeline.
`--block-sizes` adds a table of OpenCBR full and incremental runs per block size.

It is a benchmark, not a test: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MiB = 1 << 20
PASSWORD = "bench-password-not-secret"
ENV = {
    **os.environ,
    "RESTIC_PASSWORD": PASSWORD,
    "BORG_PASSPHRASE": PASSWORD,
    "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
    "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
    "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING": "YES",
    "BORG_DELETE_I_KNOW_WHAT_I_AM_DOING": "YES",
}


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(float(text[:-1] if mult != 1 else text) * mult)


# ------------------------------------------------------------------------ processes, RSS


@dataclass
class Run:
    seconds: float
    rss_mb: float
    out: str = ""
    cpu: float = 0.0  # user + system seconds of the process: steadier than wall time on a busy host


def run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run an untimed helper command; its stdout."""
    proc = subprocess.run(cmd, cwd=cwd, env=env or ENV, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return proc.stdout


def run_measured(
    cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Run:
    """Run `cmd`: wall time; peak RSS and CPU time of that command alone.

    Measured by GNU time, a small process: a child's peak RSS as the kernel reports it starts
    at its parent's size at fork, so it cannot be taken from this (large) Python process.
    """
    stats = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-time-{os.getpid()}.txt"
    # Whatever earlier steps left unwritten (the hard-linked copy of a store: thousands of
    # directory entries) is written now, not in the first fsync of the step timed next.
    os.sync()
    started = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-o", str(stats), "-f", "%M %U %S", *cmd],
        cwd=cwd,
        env=env or ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    seconds = time.perf_counter() - started
    out = proc.stdout.decode(errors="replace")
    if proc.returncode:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{out[-3000:]}")
    rss_kb, user, system = stats.read_text().split()[-3:]
    stats.unlink()
    return Run(seconds, int(rss_kb) / 1024, out, float(user) + float(system))


def fsync_file(path: Path) -> float:
    """Seconds to make a restored file durable (OpenCBR's restore fsyncs before it returns;
    restic and borg do not, so their restore time gets this added)."""
    started = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - started


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


INCREMENTAL_RUNS = 3


def median_incremental(
    repo: Path, after_full: Path, hard_links: bool, backup: Callable[[], Run]
) -> Run:
    """The median of `INCREMENTAL_RUNS` incremental backups, each into `repo` as it was
    after the full backup (`after_full`, a copy). An incremental takes a second or less for
    OpenCBR, so one run is at the mercy of this host's moments; every tool gets the same.
    `hard_links` copies by linking: for repositories whose files are never changed in place."""
    runs = []
    for _ in range(INCREMENTAL_RUNS):
        shutil.rmtree(repo, ignore_errors=True)
        subprocess.run(
            ["cp", "-al" if hard_links else "-a", str(after_full), str(repo)], check=True
        )
        runs.append(backup())
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(8 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- the images


def make_images(
    gen: Path, work: Path, size: str, seed: int = 1
) -> tuple[Path, Path, dict[str, Any]]:
    """The image (generator seed `seed`) and its 1 % mutation (seed `seed + 1`), reused while
    their size and seed match."""
    base, mutated = work / "base.img", work / "mutated.img"
    want = parse_size(size)
    meta_path = Path(str(mutated) + ".json")
    seed_path = work / "seed"
    same_seed = seed_path.exists() and seed_path.read_text() == str(seed)
    if not (base.exists() and base.stat().st_size == want and meta_path.exists() and same_seed):
        print(f"generating a {size} image and a 1 % mutated copy with {gen} ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                str(gen),
                "generate",
                "--out",
                str(base),
                "--size",
                size,
                "--seed",
                str(seed),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            [
                sys.executable,
                str(gen),
                "mutate",
                "--in",
                str(base),
                "--out",
                str(mutated),
                "--fraction",
                "0.01",
                "--seed",
                str(seed + 1),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        seed_path.write_text(str(seed))
    meta = json.loads(meta_path.read_text())
    meta["base_sha256"] = json.loads(Path(str(base) + ".json").read_text())["sha256"]
    return base, mutated, meta


def changed_extents(base: Path, mutated: Path) -> list[tuple[int, int]]:
    """4 KiB-granular extents where the two images differ (what a change map would give)."""
    page, chunk = 4096, 4 * MiB
    extents: list[tuple[int, int]] = []
    with open(base, "rb", buffering=0) as a, open(mutated, "rb", buffering=0) as b:
        size = os.fstat(a.fileno()).st_size
        for offset in range(0, size, chunk):
            x, y = os.pread(a.fileno(), chunk, offset), os.pread(b.fileno(), chunk, offset)
            if x == y:
                continue
            for at in range(0, len(x), page):
                if x[at : at + page] != y[at : at + page]:
                    start = offset + at
                    if extents and extents[-1][0] + extents[-1][1] == start:
                        extents[-1] = (extents[-1][0], extents[-1][1] + page)
                    else:
                        extents.append((start, page))
    return extents


def warm(*paths: Path) -> float:
    """Read the files once (into the page cache); returns the page-cache read rate, MB/s."""
    total, started = 0, 0.0
    for _ in range(2):  # the second pass is from the cache
        total, started = 0, time.perf_counter()
        for path in paths:
            with open(path, "rb", buffering=0) as f:
                buf = bytearray(4 * MiB)
                while n := f.readinto(buf):
                    total += n
    return total / (time.perf_counter() - started) / 1e6


# ------------------------------------------------------------------------------ the tools


def ensure_tools(others: bool) -> None:
    """GNU time (to measure) and, unless `others` is False, restic and borg, from Debian."""
    wanted = [("time", "/usr/bin/time")]
    if others:
        wanted += [("restic", "restic"), ("borgbackup", "borg")]
    missing = [pkg for pkg, exe in wanted if shutil.which(exe) is None]
    if missing:
        print(f"installing {' '.join(missing)} from Debian ...", flush=True)
        apt = ["apt-get", "install", "-y", "-q", *missing]
        if subprocess.run(apt, env={**ENV, "DEBIAN_FRONTEND": "noninteractive"}).returncode:
            subprocess.run(["apt-get", "update", "-q"], check=True)
            subprocess.run(apt, check=True, env={**ENV, "DEBIAN_FRONTEND": "noninteractive"})


@dataclass
class ToolResult:
    name: str
    full: Run | None = None
    incr_map: Run | None = None
    incr: Run | None = None
    restore: Run | None = None
    store_full: int = 0
    growth_map: int = 0
    growth: int = 0
    restore_ok: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def rss(self) -> float:
        return max(r.rss_mb for r in (self.full, self.incr_map, self.incr, self.restore) if r)


def stage_disk(work: Path, image: Path) -> Path:
    """The disk as the file tools back up: one path whose content changes (a hard link)."""
    src = work / "src"
    src.mkdir(exist_ok=True)
    disk = src / "disk.img"
    disk.unlink(missing_ok=True)
    os.link(image, disk)
    return disk


def bench_restic(work: Path, base: Path, mutated: Path, sha: str) -> ToolResult:
    repo, out = work / "restic-repo", work / "restic-restore"
    shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    res = ToolResult("restic")
    run(["restic", "init", "--repo", str(repo)])
    disk = stage_disk(work, base)
    res.full = run_measured(["restic", "-r", str(repo), "backup", "--quiet", str(disk)])
    res.store_full = tree_size(repo)
    disk = stage_disk(work, mutated)
    after_full = work / "restic-repo-full"
    shutil.rmtree(after_full, ignore_errors=True)
    repo.rename(after_full)
    res.incr = median_incremental(
        repo,
        after_full,
        True,
        lambda: run_measured(["restic", "-r", str(repo), "backup", "--quiet", str(disk)]),
    )
    shutil.rmtree(after_full, ignore_errors=True)
    res.growth = tree_size(repo) - res.store_full
    snaps = json.loads(run(["restic", "-r", str(repo), "snapshots", "--json"]))
    first = sorted(snaps, key=lambda s: s["time"])[0]["id"]
    res.restore = run_measured(["restic", "-r", str(repo), "restore", first, "--target", str(out)])
    restored = out / str(disk).lstrip("/")
    res.restore.seconds += fsync_file(restored)
    res.restore_ok = sha256_file(restored) == sha
    shutil.rmtree(out, ignore_errors=True)
    return res


def bench_borg(work: Path, base: Path, mutated: Path, sha: str) -> ToolResult:
    # The repository with borg's cache and security files: borg refuses a repository older
    # than the one its cache and security files last saw, so they are copied together.
    state, out = work / "borg", work / "borg-restore"
    repo = state / "repo"
    env = {
        **ENV,
        "BORG_CACHE_DIR": str(state / "cache"),
        "BORG_SECURITY_DIR": str(state / "security"),
    }
    shutil.rmtree(state, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    res = ToolResult("borg", notes=["borg: --compression zstd,3"])
    state.mkdir()
    run(["borg", "init", "--encryption", "repokey", str(repo)], env=env)
    disk = stage_disk(work, base)
    create = ["borg", "create", "--compression", "zstd,3", "--sparse"]
    res.full = run_measured([*create, f"{repo}::full", "disk.img"], cwd=disk.parent, env=env)
    res.store_full = tree_size(repo)
    disk = stage_disk(work, mutated)
    after_full = work / "borg-full"
    shutil.rmtree(after_full, ignore_errors=True)
    state.rename(after_full)
    res.incr = median_incremental(  # borg rewrites some of its files: a real copy
        state,
        after_full,
        False,
        lambda: run_measured([*create, f"{repo}::incr", "disk.img"], cwd=disk.parent, env=env),
    )
    shutil.rmtree(after_full, ignore_errors=True)
    res.growth = tree_size(repo) - res.store_full
    out.mkdir()
    res.restore = run_measured(["borg", "extract", "--sparse", f"{repo}::full"], cwd=out, env=env)
    res.restore.seconds += fsync_file(out / "disk.img")
    res.restore_ok = sha256_file(out / "disk.img") == sha
    shutil.rmtree(out, ignore_errors=True)
    return res


def opencbr_op(*args: str) -> tuple[Run, dict[str, Any]]:
    result = run_measured([sys.executable, str(Path(__file__).with_name("opencbr_op.py")), *args])
    line = [ln for ln in result.out.splitlines() if ln.startswith("{")][-1]
    return result, json.loads(line)


def bench_opencbr(
    work: Path,
    base: Path,
    mutated: Path,
    sha: str,
    extents_file: Path,
    block_size: int,
    tag: str = "opencbr",
    zstd_level: int | None = None,
) -> ToolResult:
    store, clone = work / f"{tag}-store", work / f"{tag}-store-nomap"
    out = work / f"{tag}-restore.img"
    for path in (store, clone):
        shutil.rmtree(path, ignore_errors=True)
    out.unlink(missing_ok=True)
    res = ToolResult("OpenCBR")
    common = ["--block-size", str(block_size)]
    if zstd_level is not None:
        common += ["--zstd-level", str(zstd_level)]
    res.full, info = opencbr_op("backup", str(store), str(base), *common)
    res.store_full = tree_size(store)
    full_id = info["manifest_id"]
    after_full = work / f"{tag}-store-full"
    shutil.rmtree(after_full, ignore_errors=True)
    store.rename(after_full)
    res.incr = median_incremental(  # the store's objects are immutable: hard links
        clone,
        after_full,
        True,
        lambda: opencbr_op("backup", str(clone), str(mutated), "--parent", full_id, *common)[0],
    )
    res.growth = tree_size(clone) - res.store_full
    res.incr_map = median_incremental(
        store,
        after_full,
        True,
        lambda: opencbr_op(
            "backup",
            str(store),
            str(mutated),
            "--parent",
            full_id,
            "--extents",
            str(extents_file),
            *common,
        )[0],
    )
    res.growth_map = tree_size(store) - res.store_full
    shutil.rmtree(after_full, ignore_errors=True)
    res.restore, _ = opencbr_op("restore", str(store), full_id, str(out))
    res.restore_ok = sha256_file(out) == sha
    out.unlink(missing_ok=True)
    shutil.rmtree(clone, ignore_errors=True)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G")
    parser.add_argument(
        "--gen",
        default="../shared/bench/gen_image.py",
        help="image generator, relative to the repository root",
    )
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "work")
    parser.add_argument(
        "--block-sizes", default="", help="also compare OpenCBR block sizes, e.g. 32K,64K,128K"
    )
    parser.add_argument("--skip-others", action="store_true", help="OpenCBR only")
    parser.add_argument(
        "--zstd-levels", default="", help="also compare OpenCBR zstd levels, e.g. 1,3"
    )
    args = parser.parse_args()
    from limits import machine_limits, pool_comparison  # bench/limits.py
    from report import print_block_sizes, print_table  # bench/report.py

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    gen = (REPO / args.gen).resolve()
    base, mutated, meta = make_images(gen, work, args.size)
    extents = changed_extents(base, mutated)
    extents_file = work / "extents.json"
    extents_file.write_text(json.dumps(extents))
    changed = sum(length for _, length in extents)
    page_cache = warm(base, mutated)
    from opencbr.chunkstore import DEFAULT_BLOCK_SIZE

    ensure_tools(not args.skip_others)
    results = [
        bench_opencbr(work, base, mutated, meta["base_sha256"], extents_file, DEFAULT_BLOCK_SIZE)
    ]
    if not args.skip_others:
        results.append(bench_restic(work, base, mutated, meta["base_sha256"]))
        results.append(bench_borg(work, base, mutated, meta["base_sha256"]))
    limits = machine_limits(base, page_cache)
    pools = pool_comparison(base)
    summary = {
        "size": base.stat().st_size,
        "changed_bytes": changed,
        "bytes_written": meta["bytes_written"],
        "extents": len(extents),
    }
    print_table(results, summary, limits, pools)
    if args.block_sizes:
        rows = []
        for text in args.block_sizes.split(","):
            bs = parse_size(text)
            rows.append(
                (
                    bs,
                    bench_opencbr(
                        work,
                        base,
                        mutated,
                        meta["base_sha256"],
                        extents_file,
                        bs,
                        tag=f"opencbr-{bs}",
                    ),
                )
            )
        print_block_sizes(rows, summary)
    if args.zstd_levels:
        for level in (int(text) for text in args.zstd_levels.split(",")):
            res = bench_opencbr(
                work,
                base,
                mutated,
                meta["base_sha256"],
                extents_file,
                DEFAULT_BLOCK_SIZE,
                tag=f"opencbr-z{level}",
                zstd_level=level,
            )
            print(
                f"zstd level {level}: full {res.full.seconds:.2f} s "
                f"(CPU {res.full.cpu:.1f} s), incr. with map {res.incr_map.seconds:.2f} s, "
                f"no map {res.incr.seconds:.2f} s, restore {res.restore.seconds:.2f} s, "
                f"store {res.store_full / 1e6:.1f} MB, restore ok {res.restore_ok}"
            )


if __name__ == "__main__":
    main()
