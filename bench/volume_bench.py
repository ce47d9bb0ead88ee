"""Benchmark of the local volume driver: import/export vs cp, ranged writes, encryption cost.

    uv run python bench/volume_bench.py [--size 2G] [--runs 3] [--workdir DIR]
                                        [--gen-image ../shared/bench/gen_image.py]

Generates a realistic sparse image with the shared generator, then times, in the same run and on
the same file system: ``cp --sparse=auto`` + fsync of the copy, plain and encrypted import and
export through the driver (each fsyncs its target), and 1 MiB ranged writes (sequential into a
fresh disk, then rewrites of already-marked blocks; both end with a flush). Rates are the image
size divided by the wall time, best of ``--runs``. Prints a table; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opencbr.evs.volumes import DiskKey, LocalVolumeDriver

REPO = Path(__file__).resolve().parents[1]
DEFAULT_GENERATOR = "../shared/bench/gen_image.py"  # relative to the repository root
MiB = 1 << 20


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G", help="image size for the generator (2G)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions; the best counts")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory")
    parser.add_argument(
        "--gen-image", default=DEFAULT_GENERATOR, help="generator, relative to the repo root"
    )
    parser.add_argument("--write-mib", type=int, default=512, help="MiB of ranged writes")
    return parser.parse_args()


def best_of(runs: int, action: Callable[[], None], reset: Callable[[], None]) -> float:
    """Best wall time of `action`; each run starts with no dirty pages left by earlier steps.

    Without the sync, the write-back of the previous step's output (a deleted copy, a replaced
    disk) lands inside the next timed step and moves results by up to 2x.
    """
    times = []
    for _ in range(runs):
        reset()
        os.sync()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def generate(generator: Path, out: Path, size: str) -> None:
    print(f"generating {out} ({size}) with {generator} ...", file=sys.stderr)
    subprocess.run(
        [
            sys.executable,
            str(generator),
            "generate",
            "--out",
            str(out),
            "--size",
            size,
            "--seed",
            "1",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def cp_with_fsync(source: Path, target: Path) -> None:
    subprocess.run(["cp", "--sparse=auto", str(source), str(target)], check=True)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Bench:
    def __init__(self, work: Path, base: Path, runs: int) -> None:
        self.work, self.base, self.runs = work, base, runs
        self.size = base.stat().st_size
        self.driver = LocalVolumeDriver(work / "volumes")
        self.key = DiskKey.generate()
        self.rows: list[tuple[str, float, float]] = []  # name, seconds, bytes

    def fresh(self, volume_id: str, key: DiskKey | None) -> Callable[[], None]:
        def reset() -> None:
            if self.driver.exists(volume_id):
                self.driver.delete(volume_id)
            self.driver.create(volume_id, self.size, key)

        return reset

    def record(self, name: str, seconds: float, nbytes: int) -> float:
        self.rows.append((name, seconds, nbytes))
        return nbytes / seconds

    def run_transfers(self) -> dict[str, float]:
        copy = self.work / "cp.img"
        out = self.work / "export.img"
        rates = {}
        rates["cp"] = self.record(
            "cp --sparse=auto + fsync",
            best_of(self.runs, lambda: cp_with_fsync(self.base, copy), lambda: copy.unlink(True)),
            self.size,
        )
        copy.unlink(missing_ok=True)
        for label, key in (("plain", None), ("encrypted", self.key)):
            vid = f"bench-{label}"
            seconds = best_of(
                self.runs,
                lambda vid=vid: self.driver.import_file(vid, self.base),
                self.fresh(vid, key),
            )
            rates[f"import {label}"] = self.record(f"import {label}", seconds, self.size)
            seconds = best_of(
                self.runs,
                lambda vid=vid: self.driver.export_file(vid, out),
                lambda: out.unlink(missing_ok=True),
            )
            rates[f"export {label}"] = self.record(f"export {label}", seconds, self.size)
            self.check_export(out)
            out.unlink(missing_ok=True)
            self.driver.delete(vid)
        return rates

    def check_export(self, out: Path) -> None:
        """A cheap correctness check: the first and last 64 MiB match the source."""
        with open(self.base, "rb") as a, open(out, "rb") as b:
            for offset in (0, max(0, self.size - 64 * MiB)):
                a.seek(offset)
                b.seek(offset)
                if a.read(64 * MiB) != b.read(64 * MiB):
                    raise SystemExit(f"export differs from the source near offset {offset}")

    def run_writes(self, total_mib: int) -> dict[str, float]:
        payload = os.urandom(MiB)
        count = min(total_mib, self.size // MiB)
        rates = {}
        for label, key in (("plain", None), ("encrypted", self.key)):
            vid = f"writes-{label}"
            self.fresh(vid, key)()

            def sequential(vid: str = vid) -> None:
                for i in range(count):
                    self.driver.write(vid, i * MiB, payload)
                self.driver.flush(vid)

            for phase in ("fresh blocks", "rewrites"):
                start = time.perf_counter()
                sequential()
                seconds = time.perf_counter() - start
                name = f"1 MiB writes {label}, {phase}"
                rates[name] = self.record(name, seconds, count * MiB)
            self.driver.delete(vid)
        return rates

    def print_table(self, rates: dict[str, float]) -> None:
        print(
            f"\nimage {self.base.name}: {self.size / MiB:.0f} MiB, "
            f"{self.base.stat().st_blocks * 512 / MiB:.0f} MiB allocated; best of {self.runs}"
        )
        print(f"{'operation':<40} {'seconds':>8} {'MB/s':>9}")
        for name, seconds, nbytes in self.rows:
            print(f"{name:<40} {seconds:>8.2f} {nbytes / seconds / 1e6:>9.0f}")
        cp = rates["cp"]
        print("\ntargets")
        checks = [
            ("plain import / cp", rates["import plain"] / cp, 0.80),
            ("plain export / cp", rates["export plain"] / cp, 0.80),
            (
                "encrypted import / plain import",
                rates["import encrypted"] / rates["import plain"],
                0.50,
            ),
        ]
        for name, ratio, target in checks:
            verdict = "met" if ratio >= target else "MISSED"
            print(f"{name:<40} {ratio:>8.0%} (target {target:.0%}: {verdict})")
        for name, rate in rates.items():
            if name.startswith("1 MiB writes"):
                verdict = "met" if rate >= 200e6 else "MISSED"
                print(f"{name:<40} {rate / 1e6:>7.0f} MB/s (target 200: {verdict})")


def main() -> None:
    args = parse_args()
    generator = (REPO / args.gen_image).resolve()
    work = Path(tempfile.mkdtemp(prefix="volume-bench-", dir=args.workdir))
    try:
        base = work / "base.img"
        generate(generator, base, args.size)
        bench = Bench(work, base, args.runs)
        rates = bench.run_transfers()
        rates.update(bench.run_writes(args.write_mib))
        bench.driver.close_all()
        bench.print_table(rates)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
