"""NBD volumes against a real `qemu-nbd -B`: the extents a backup view hands the engine, the
reasons it refuses to trust a bitmap, reads larger than one NBD request, block status past
one request's span, and the error that names the source when the server goes away."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from opencbr.evs.volumes import nbd_connection
from opencbr.evs.volumes.errors import NbdSourceFailed, NbdUriInvalid
from opencbr.evs.volumes.nbd_source import (
    NbdSource,
    NbdVolume,
    ReadRecord,
    check_source,
    uncovered_bytes,
)
from tests.e2e import qemu_nbd as q
from tests.e2e.qemu_nbd import MiB

GiB = 1 << 30


def test_uncovered_bytes() -> None:
    assert uncovered_bytes([], [(0, 10)]) == 0
    assert uncovered_bytes([(0, 10)], []) == 10
    assert uncovered_bytes([(0, 10), (20, 10)], [(0, 30)]) == 0
    assert uncovered_bytes([(0, 10), (20, 10)], [(5, 20)]) == 5 + 5
    assert uncovered_bytes([(10, 10)], [(0, 12), (14, 2), (19, 5)]) == 2 + 3


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (NbdSource(""), "give a URI"),
        (NbdSource("nbd://h/x y"), "give a URI"),
        (NbdSource("ftp://h/x"), "scheme"),
        (NbdSource("nbd://h/x", bitmap="a b"), "bitmap"),
        (NbdSource("nbd://h/x", tls_psk_file="k.psk"), "absolute"),
    ],
)
def test_check_source_refuses(source: NbdSource, message: str) -> None:
    with pytest.raises(NbdUriInvalid, match=message):
        check_source(source)


@pytest.mark.slow
def test_views_extents_reasons_and_faults(tmp_path: Path) -> None:
    q.need_qemu()
    image = q.create(tmp_path / "d.qcow2", "3G")
    q.write(image, (0xAB, 0, 4 * MiB), (0xCD, 2 * GiB + 512 * MiB, 80 * MiB))
    q.run("qemu-img", "bitmap", "--add", str(image), "b0")
    q.write(image, (0xEF, 64 * MiB, MiB))
    sock = tmp_path / "s"
    served = q.QemuNbd(image, sock, "b0")
    try:
        first = NbdVolume("d", NbdSource(served.uri, "b0"), None).begin_backup()
        with first:
            assert first.allocated_extents() == [
                (0, 4 * MiB),
                (64 * MiB, MiB),
                (2 * GiB + 512 * MiB, 80 * MiB),
            ]
            assert first.changed_extents() is None
            assert first.record.reason == "the previous backup did not read dirty bitmap b0"
            data = first.read_at(2 * GiB + 512 * MiB, 80 * MiB)  # > one NBD request
            assert data == b"\xcd" * (80 * MiB)
        marked = [(64 * MiB, MiB)]
        trusted = ReadRecord("b0", marked, True)
        with NbdVolume("d", NbdSource(served.uri, "b0"), trusted).begin_backup() as view:
            assert view.changed_extents() == marked
            assert (view.record.mode, view.record.reason) == ("bitmap", "")
        lost = ReadRecord("b0", [(0, 128 << 10), *marked], True)
        with NbdVolume("d", NbdSource(served.uri, "b0"), lost).begin_backup() as view:
            assert view.changed_extents() is None
            assert "no longer marks 131072 bytes" in view.record.reason
        with NbdVolume("d", NbdSource(served.uri, "b1"), trusted).begin_backup() as view:
            assert view.changed_extents() is None
            assert view.record.reason == "dirty bitmap b1 is missing on the source"
        with NbdVolume("d", NbdSource(served.uri, ""), trusted).begin_backup() as view:
            assert view.changed_extents() is None
            assert "no dirty bitmap is registered" in view.record.reason
        view = NbdVolume("d", NbdSource(served.uri, "b0"), None).begin_backup()
        served.kill()
        with pytest.raises(NbdSourceFailed) as failed:
            view.read_at(0, MiB)
        assert failed.value.message.startswith(f"NBD source {served.uri}: nbd_pread")
        view.abort()
    finally:
        served.stop()
    with pytest.raises(NbdSourceFailed, match="cannot connect"):
        NbdVolume("d", NbdSource(served.uri), None).begin_backup()


@pytest.mark.slow
def test_tls_psk_and_a_busy_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A TLS export is reached with its PSK file; a server busy with another client (qemu-nbd
    serves one at a time) is given up on after the connect deadline, naming the source."""
    q.need_qemu()
    (tmp_path / "keys.psk").write_text("alice:" + "ab" * 32 + "\n")
    image = q.create(tmp_path / "d.qcow2", "64M")
    sock = tmp_path / "s"
    served = subprocess.Popen(
        [
            "qemu-nbd", "-r", "-t", "-f", "qcow2", "-x", "vm", "-k", str(sock),
            "--object", f"tls-creds-psk,id=tls0,endpoint=server,dir={tmp_path}",
            "--tls-creds", "tls0", str(image),
        ]
    )  # fmt: skip
    try:
        q.wait_for_socket(sock)
        uri = f"nbds+unix://alice@/vm?socket={sock}"
        key = str(tmp_path / "keys.psk")
        with NbdVolume("d", NbdSource(uri, "", key), None).begin_backup() as view:
            assert view.size == 64 * MiB  # over TLS; this client still holds the export
            monkeypatch.setattr(nbd_connection, "CONNECT_SECONDS", 0.5)
            with pytest.raises(NbdSourceFailed, match="no NBD handshake within"):
                NbdVolume("d", NbdSource(uri, "", key), None).begin_backup()
    finally:
        served.terminate()
        served.wait(10)


@pytest.mark.slow
def test_a_server_that_stops_answering_is_given_up_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nbdkit's delay filter holds every read for a minute: the read fails after the request
    deadline naming the source, the connection refuses what follows, and closing it does not
    wait for the server."""
    if shutil.which("nbdkit") is None:
        pytest.skip("nbdkit missing: run scripts/setup-nbd.sh")
    sock = tmp_path / "d.sock"
    served = subprocess.Popen(
        ["nbdkit", "-f", "-U", str(sock), "--filter=delay", "pattern", "size=64M", "rdelay=60"]
    )
    try:
        q.wait_for_socket(sock)
        uri = f"nbd+unix:///?socket={sock}"
        monkeypatch.setattr(nbd_connection, "IO_SECONDS", 0.5)
        with NbdVolume("d", NbdSource(uri), None).begin_backup() as view:
            assert view.allocated_extents() == [(0, 64 * MiB)]  # block status: not delayed
            with pytest.raises(NbdSourceFailed) as failed:
                view.read_at(0, MiB)
            assert failed.value.message == (
                f"NBD source {uri}: no answer to nbd_pread within 0.5 s"
            )
            with pytest.raises(NbdSourceFailed, match="an earlier request hung"):
                view.read_at(MiB, MiB)
        assert view.closed  # and without waiting a minute for the delayed read
    finally:
        served.terminate()
        served.wait(10)


@pytest.mark.slow
def test_a_read_error_names_the_source(tmp_path: Path) -> None:
    """nbdkit's error filter fails every read with EIO: the view's read fails naming the
    source (the engine then fails the backup and keeps nothing)."""
    if shutil.which("nbdkit") is None:
        pytest.skip("nbdkit missing: run scripts/setup-nbd.sh")
    sock = tmp_path / "e.sock"
    served = subprocess.Popen(
        [
            "nbdkit", "-f", "-U", str(sock), "--filter=error", "pattern", "size=64M",
            "error-pread=EIO", "error-pread-rate=100%",
        ]
    )  # fmt: skip
    try:
        q.wait_for_socket(sock)
        uri = f"nbd+unix:///?socket={sock}"
        with NbdVolume("d", NbdSource(uri), None).begin_backup() as view:
            assert view.size == 64 * MiB
            with pytest.raises(NbdSourceFailed) as failed:
                view.read_at(0, MiB)
        assert failed.value.message.startswith(f"NBD source {uri}: nbd_pread")
        assert "Input/output error" in failed.value.message
    finally:
        served.terminate()
        served.wait(10)
