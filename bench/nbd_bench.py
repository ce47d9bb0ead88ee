"""Benchmark of NBD exports: our export (nbdkit + the OpenCBR plugin and broker) against
`qemu-nbd` serving the same raw image, both over loopback TCP.

    uv run python bench/nbd_bench.py [--size-gb 1] [--seconds 5] [--workdir DIR]

Measures, with libnbd's asynchronous API at queue depth 16 (Debian's python3-libnbd, run in
a separate client process so that the client never shares an interpreter with the broker):
sequential 1 MiB reads of the whole disk, sequential 1 MiB writes of the whole disk (then a
flush), and 4 KiB random reads for `--seconds`. Our export is measured on a plain and on an
encrypted disk, and on the plain disk again over TLS (PSK: what a server beyond loopback
requires); the image is in the page cache for every server. Prints a table; it is not a
test.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MiB = 1 << 20
GiB = 1 << 30
QD = 16
DEBIAN_PYTHON = "/usr/lib/python3/dist-packages"


# ---------------------------------------------------------------------------- client process


def _libnbd() -> Any:
    sys.path.append(DEBIAN_PYTHON)
    import nbd  # type: ignore[import-not-found]

    return nbd


def _run_queue(h: Any, nbd: Any, requests: list[int], size: int, write: bool) -> float:
    """Issue requests at offsets with QD in flight; seconds taken."""
    buffers = [nbd.Buffer(size) for _ in range(QD)]
    if write:
        payload = os.urandom(size)
        buffers = [nbd.Buffer.from_bytearray(bytearray(payload)) for _ in range(QD)]
    free = list(range(QD))
    done = [0]

    def completed(slot: int) -> Any:
        def callback(error: Any) -> int:
            free.append(slot)
            done[0] += 1
            return 1

        return callback

    start = time.perf_counter()
    position = 0
    while done[0] < len(requests):
        while free and position < len(requests):
            slot = free.pop()
            issue = h.aio_pwrite if write else h.aio_pread
            issue(buffers[slot], requests[position], completion=completed(slot))
            position += 1
        h.poll(-1)
    if write:
        h.flush()
    return time.perf_counter() - start


def client(uri: str, seconds: float) -> dict[str, float]:
    nbd = _libnbd()
    h = nbd.NBD()
    h.set_uri_allow_local_file(True)  # a TLS PSK file named in the URI
    h.connect_uri(uri)
    size = h.get_size()
    sequential = list(range(0, size, MiB))
    result: dict[str, float] = {}
    _run_queue(h, nbd, sequential, MiB, write=False)  # warm the page cache
    result["read_1m_mib_s"] = size / MiB / _run_queue(h, nbd, sequential, MiB, write=False)
    result["write_1m_mib_s"] = size / MiB / _run_queue(h, nbd, sequential, MiB, write=True)
    rng = random.Random(1)
    blocks = size // 4096
    count, elapsed = 0, 0.0
    while elapsed < seconds:
        batch = [rng.randrange(blocks) * 4096 for _ in range(20000)]
        elapsed += _run_queue(h, nbd, batch, 4096, write=False)
        count += len(batch)
    result["rand_4k_iops"] = count / elapsed
    h.shutdown()
    return result


def measure(uri: str, seconds: float) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--client", uri, "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the client failed on {uri}: {done.stderr.strip()[-500:]}")
    measured: dict[str, float] = json.loads(done.stdout)
    return measured


# ---------------------------------------------------------------------------- servers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bench_qemu_nbd(image: Path, seconds: float, psk: Path | None = None) -> dict[str, float]:
    """qemu-nbd on the raw image; with `psk` (a keys.psk file) requiring TLS with it."""
    port = _free_port()
    tls = []
    if psk:
        psk_object = f"tls-creds-psk,id=tls0,endpoint=server,dir={psk.parent}"
        tls = ["--object", psk_object, "--tls-creds", "tls0"]
    process = subprocess.Popen(
        [
            "qemu-nbd",
            *tls,
            "-f",
            "raw",
            "-e",
            "16",
            "-t",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "-x",
            "bench",
            str(image),
        ],
        stderr=subprocess.DEVNULL,  # the readiness probe is a client that says nothing
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        if psk:
            return measure(f"nbds://bench@127.0.0.1:{port}/bench?tls-psk-file={psk}", seconds)
        return measure(f"nbd://127.0.0.1:{port}/bench", seconds)
    finally:
        process.terminate()
        process.wait()


def bench_opencbr(work: Path, size_gb: int, seconds: float) -> dict[str, dict[str, float]]:
    """Our exports of a plain and an encrypted disk, filled with random data."""
    from opencbr.api.runtime import build_runtime
    from opencbr.core.context import Actor
    from opencbr.core.settings import Settings
    from opencbr.evs import nbd
    from opencbr.evs.models import DiskStatus
    from opencbr.evs.service import DiskSpec, create_disk_record, provision_image, volume_driver
    from opencbr.iam import service as iam
    from opencbr.iam.agencies import EVS_KMS_AGENCY, create_agency

    settings = Settings(data_dir=work / "data", root_key=base64.b64encode(os.urandom(32)).decode())
    runtime = build_runtime(settings)
    results: dict[str, dict[str, float]] = {}
    fill = os.urandom(64 * MiB)
    try:
        with runtime.database.unit_of_work() as session:
            creds = iam.create_tenant(
                session, runtime.root_key, settings.regions, "bench", ["region-1"]
            )
            create_agency(session, creds.domain_id, EVS_KMS_AGENCY, "op_svc_evs")
        actor = Actor(creds.domain_id, "", creds.projects["region-1"], "region-1")
        for label, encrypted in (("plain", False), ("encrypted", True)):
            with runtime.database.unit_of_work() as session:
                spec = DiskSpec("bench", size_gb, "az1", "SAS", encrypted=encrypted)
                disk = create_disk_record(
                    session, runtime, actor, spec, status=DiskStatus.AVAILABLE
                )
                provision_image(runtime, disk, session=session, actor=actor)
                disk_id = disk.id
            driver = volume_driver(runtime)
            for offset in range(0, size_gb * GiB, len(fill)):
                driver.write(disk_id, offset, fill)
            driver.flush(disk_id)
            with runtime.database.unit_of_work() as session:
                uri = nbd.open_export(session, runtime, actor, disk_id, read_only=False).uri
            results[f"OpenCBR export, {label} disk"] = measure(uri, seconds)
            if not encrypted:
                copy = work / "same.img"
                shutil.copyfile(driver.root / f"{disk_id}.img", copy)
                results["qemu-nbd -f raw -e 16, same raw image"] = bench_qemu_nbd(copy, seconds)
                plain_disk = disk_id
        keys = work / "psk" / "keys.psk"
        keys.parent.mkdir()
        keys.write_text(f"bench:{os.urandom(32).hex()}\n")
        tls = _over_tls(runtime, actor, plain_disk, keys, seconds)
        results["OpenCBR export, plain disk, TLS (PSK)"] = tls
        same = work / "same.img"
        results["qemu-nbd, same raw image, TLS (PSK)"] = bench_qemu_nbd(same, seconds, keys)
    finally:
        nbd.stop_nbd_server(runtime)
        runtime.database.dispose()
    return results


def _over_tls(
    runtime: Any, actor: Any, disk_id: str, keys: Path, seconds: float
) -> dict[str, float]:
    """The same disk's export from an NBD server that requires TLS with a pre-shared key."""
    from opencbr.evs import nbd

    nbd.stop_nbd_server(runtime)
    runtime.settings = runtime.settings.model_copy(update={"nbd_tls_psk_file": keys})
    with runtime.database.unit_of_work() as session:
        nbd.close_export(session, actor, disk_id)
    with runtime.database.unit_of_work() as session:
        uri = nbd.open_export(session, runtime, actor, disk_id, read_only=False).uri
    user_uri = uri.replace("nbds://", "nbds://bench@", 1) + f"?tls-psk-file={keys}"
    return measure(user_uri, seconds)


def table(results: dict[str, dict[str, float]]) -> str:
    base = results["qemu-nbd -f raw -e 16, same raw image"]
    lines = [
        "| server | 1 MiB seq. reads QD16 | 1 MiB seq. writes QD16 | 4 KiB random reads QD16 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, row in results.items():
        cells = [
            f"{row['read_1m_mib_s']:,.0f} MiB/s "
            f"({row['read_1m_mib_s'] / base['read_1m_mib_s']:.0%})",
            f"{row['write_1m_mib_s']:,.0f} MiB/s "
            f"({row['write_1m_mib_s'] / base['write_1m_mib_s']:.0%})",
            f"{row['rand_4k_iops'] / 1000:,.1f}k IOPS "
            f"({row['rand_4k_iops'] / base['rand_4k_iops']:.0%})",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--client", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(client(args.client, args.seconds)))
        return
    work = Path(tempfile.mkdtemp(prefix="nbd-bench-", dir=args.workdir))
    try:
        results = bench_opencbr(work, args.size_gb, args.seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"disk {args.size_gb} GiB, loopback TCP, libnbd aio client, {os.cpu_count()} CPUs")
    print(table(results))


if __name__ == "__main__":
    main()
