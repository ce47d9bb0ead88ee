"""Benchmark of disk snapshots, rollback and growth in the local volume driver.

    uv run python bench/snapshot_bench.py [--disk 10G] [--data 1G] [--runs 3] [--workdir DIR]

Fills `--data` of random bytes (1 MiB writes, spread over the disk) into a plain and an
encrypted `--disk` sparse disk, then times, best of `--runs`: a snapshot (a frozen sparse copy
of the image's data extents, in the kernel, fsynced), a rollback from it, and growing the disk
by the same size again (change map and image). `cp --sparse=always` of the image is the
baseline for the copy. Rates are MB/s of data (10^6 bytes per second). Prints a table; it is
not a test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from opencbr.evs.volumes import DiskKey, LocalVolumeDriver

MiB = 1 << 20


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": MiB, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].isalpha() else int(text)


def best_of(runs: int, action: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(runs):
        os.sync()
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def fill(driver: LocalVolumeDriver, volume_id: str, disk: int, data: int) -> None:
    chunk, pieces = os.urandom(MiB), data // MiB
    stride = (disk // pieces) // MiB * MiB
    for index in range(pieces):
        driver.write(volume_id, index * stride, chunk)
    driver.flush(volume_id)


def run(work: Path, disk: int, data: int, runs: int) -> list[tuple[str, float, float]]:
    driver = LocalVolumeDriver(work / "volumes")
    rows = []
    for name, key in (("plain", None), ("encrypted", DiskKey(os.urandom(64)))):
        driver.create(name, disk, key)
        fill(driver, name, disk, data)
        image = work / "volumes" / f"{name}.img"
        copy = work / f"{name}.copy"

        def cp(source: Path = image, target: Path = copy) -> None:
            subprocess.run(["cp", "--sparse=always", str(source), str(target)], check=True)
            fd = os.open(target, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)

        def snapshot(volume_id: str = name, counter: Iterator[int] = iter(range(1000))) -> None:
            driver.snapshot(volume_id, f"{volume_id}-{next(counter)}")

        rows.append((f"{name}: cp --sparse=always", best_of(runs, cp), data))
        rows.append((f"{name}: snapshot", best_of(runs, snapshot), data))
        rows.append(
            (f"{name}: rollback", best_of(runs, lambda v=name: driver.rollback(v, f"{v}-0")), data)
        )
        sizes = iter(range(2, 2 + runs))
        grow = best_of(runs, lambda v=name, s=sizes: driver.grow(v, disk * next(s)))
        rows.append((f"{name}: grow by {disk >> 30} GiB", grow, 0))
    driver.close_all()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disk", default="10G", help="disk size (10G)")
    parser.add_argument("--data", default="1G", help="bytes of data in it (1G)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions; the best counts")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory")
    args = parser.parse_args()
    disk, data = _size(args.disk), _size(args.data)
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        rows = run(Path(folder), disk, data, args.runs)
    print(f"\n{data >> 20} MiB of data in a {disk >> 30} GiB disk, best of {args.runs}")
    print(f"{'step':34} {'seconds':>8} {'MB/s':>9}")
    for name, seconds, nbytes in rows:
        rate = f"{nbytes / seconds / 1e6:9.0f}" if nbytes else f"{'-':>9}"
        print(f"{name:34} {seconds:8.3f} {rate}")


if __name__ == "__main__":
    main()
