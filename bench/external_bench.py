"""External-disk benchmark: a VM disk (qcow2 with a persistent dirty bitmap, served by
`qemu-nbd -B`) backed up through NBD by OpenCBR, against restic backing up the image file.

    uv run python bench/external_bench.py [--size 2G] [--gen ../shared/bench/gen_image.py]
                                          [--workdir bench/work]

1. The shared generator's 2 GiB mixed image (`backup_bench.make_images`: 40 % random, 30 %
   text, 20 % holes, 10 % copies) is converted to qcow2 (`vm0.qcow2`), a bitmap `b0` added.
2. The 1 % mutation (scattered 4-64 KiB writes) is written into a copy through a writable
   `qemu-nbd` export, so qemu marks the bitmap as a VM's writes would (`vm1.qcow2`).
3. Each step in a process of its own, timed with GNU time after an `os.sync()`:
   * OpenCBR full: `qemu-nbd -r -B b0` of vm0, every allocated extent read through NBD;
   * OpenCBR incremental through the bitmap: vm1 served, only the marked extents read;
   * OpenCBR incremental without a bitmap: vm1, every allocated extent read against the parent
     (what a reset bitmap costs);
   * restic full of vm0.qcow2 and restic incremental of the same path after it became vm1
     (restic reads the whole file again: it has no bitmap).
   Incrementals are the median of three, each from a copy of the repository after the full.
Prints one table and the ratios against the targets (incremental ≥ 20x restic's,
full ≥ 1.5x restic's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from backup_bench import (  # bench/backup_bench.py
    REPO,
    Run,
    ensure_tools,
    make_images,
    median_incremental,
    run,
    run_measured,
    warm,
)

MiB = 1 << 20
OP = Path(__file__).with_name("external_op.py")
sys.path.append("/usr/lib/python3/dist-packages")  # Debian's libnbd binding (python3-libnbd)


class Served:
    """`qemu-nbd` serving an image on a unix socket while the `with` block runs."""

    def __init__(self, image: Path, sock: Path, *, writable: bool = False) -> None:
        sock.unlink(missing_ok=True)
        args = ["qemu-nbd", "-t", "-f", "qcow2", "-B", "b0", "-x", "vm", "-k", str(sock)]
        self.proc = subprocess.Popen([*args, *([] if writable else ["-r"]), str(image)])
        while not sock.exists():
            time.sleep(0.02)
        self.uri = f"nbd+unix:///vm?socket={sock}"

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *_: object) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def make_vm_images(work: Path, base: Path, mutated: Path) -> tuple[Path, Path, int]:
    """vm0.qcow2 (the base, bitmap b0 added) and vm1.qcow2 (the mutation written through NBD);
    the bytes the mutation wrote."""
    import nbd
    from backup_bench import changed_extents

    vm0, vm1 = work / "vm0.qcow2", work / "vm1.qcow2"
    for path in (vm0, vm1):
        path.unlink(missing_ok=True)
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(base), str(vm0)])
    run(["qemu-img", "bitmap", "--add", str(vm0), "b0"])
    shutil.copy(vm0, vm1)
    written = 0
    with Served(vm1, work / "vm1w.sock", writable=True) as served, open(mutated, "rb") as f:
        handle = nbd.NBD()
        handle.connect_uri(served.uri)
        for offset, length in changed_extents(base, mutated):
            handle.pwrite(os.pread(f.fileno(), length, offset), offset)
            written += length
        handle.flush()
        handle.shutdown()
    return vm0, vm1, written


def external_op(*args: str) -> tuple[Run, dict[str, object]]:
    result = run_measured([sys.executable, str(OP), *args], cwd=OP.parent)
    line = [ln for ln in result.out.splitlines() if ln.startswith("{")][-1]
    return result, json.loads(line)


def bench_opencbr(work: Path, vm0: Path, vm1: Path) -> dict[str, tuple[Run, dict[str, object]]]:
    store, after_full, record = work / "ext-store", work / "ext-store-full", work / "ext-rec.json"
    for path in (store, after_full):
        shutil.rmtree(path, ignore_errors=True)
    out: dict[str, tuple[Run, dict[str, object]]] = {}
    with Served(vm0, work / "vm0.sock") as served:
        out["full"] = external_op(str(store), served.uri, "--bitmap", "b0", "--record", str(record))
    store.rename(after_full)
    parent = str(out["full"][1]["manifest_id"])
    with Served(vm1, work / "vm1.sock") as served:
        for name, bitmap in (("bitmap", ["--bitmap", "b0"]), ("no bitmap", [])):
            infos: list[dict[str, object]] = []

            def once(bitmap: list[str] = bitmap, infos: list[dict[str, object]] = infos) -> Run:
                run_, info = external_op(
                    str(store), served.uri, *bitmap, "--parent", parent, "--previous", str(record)
                )
                infos.append(info)
                return run_

            timed = median_incremental(store, after_full, True, once)
            out[name] = (timed, infos[-1])
    shutil.rmtree(after_full, ignore_errors=True)
    return out


def bench_restic(work: Path, vm0: Path, vm1: Path) -> dict[str, Run]:
    repo, after_full, src = work / "ext-restic", work / "ext-restic-full", work / "ext-src"
    for path in (repo, after_full, src):
        shutil.rmtree(path, ignore_errors=True)
    src.mkdir()
    disk = src / "vm.qcow2"
    run(["restic", "init", "--repo", str(repo)])
    os.link(vm0, disk)
    full = run_measured(["restic", "-r", str(repo), "backup", "--quiet", str(disk)])
    disk.unlink()
    os.link(vm1, disk)
    repo.rename(after_full)
    incr = median_incremental(
        repo,
        after_full,
        True,
        lambda: run_measured(["restic", "-r", str(repo), "backup", "--quiet", str(disk)]),
    )
    shutil.rmtree(after_full, ignore_errors=True)
    return {"full": full, "incremental": incr}


def print_table(
    size: int, changed: int, ours: dict[str, tuple[Run, dict[str, object]]], restic: dict[str, Run]
) -> None:
    def row(tool: str, what: str, r: Run, read: str) -> str:
        return f"| {tool} | {what} | {r.seconds:.2f} | {r.cpu:.2f} | {r.rss_mb:.0f} | {read} |"

    print(
        f"\nimage {size / MiB:.0f} MiB, mutation {changed / MiB:.1f} MiB "
        f"({100 * changed / size:.2f} %)\n"
    )
    print("| tool | backup | wall s | CPU s | peak RSS MB | bytes read |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for key, what in (
        ("full", "full (allocated extents)"),
        ("bitmap", "incremental, dirty bitmap"),
        ("no bitmap", "incremental, no bitmap (reads all)"),
    ):
        r, info = ours[key]
        print(row("OpenCBR via NBD", what, r, f"{int(info['nbd_read_bytes']) / MiB:.1f} MiB"))
    print(row("restic", "full (image file)", restic["full"], "whole file"))
    print(row("restic", "incremental (image file)", restic["incremental"], "whole file"))
    incr = restic["incremental"].seconds / ours["bitmap"][0].seconds
    full = restic["full"].seconds / ours["full"][0].seconds
    print(f"\nincremental: restic / OpenCBR = {incr:.1f}x (target >= 20x)")
    print(f"full:        restic / OpenCBR = {full:.2f}x (target >= 1.5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G")
    parser.add_argument("--gen", default="../shared/bench/gen_image.py")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "work")
    args = parser.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    base, mutated, _ = make_images((REPO / args.gen).resolve(), work, args.size)
    ensure_tools(True)
    vm0, vm1, changed = make_vm_images(work, base, mutated)
    warm(vm0, vm1)
    ours = bench_opencbr(work, vm0, vm1)
    restic = bench_restic(work, vm0, vm1)
    print_table(base.stat().st_size, changed, ours, restic)
    print("\nOpenCBR read records:", {k: (v[1]["mode"], v[1]["reason"]) for k, v in ours.items()})


if __name__ == "__main__":
    main()
