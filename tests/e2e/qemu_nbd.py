"""Real hypervisor-side parts for external-disk tests: qcow2 images changed with `qemu-io`,
served by `qemu-nbd -B BITMAP` on a unix socket, behind a proxy that counts the bytes the
server sends (what a backup read) and can kill the server after a given number of them."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

MiB = 1 << 20
TOOLS = ("qemu-img", "qemu-io", "qemu-nbd")


def need_qemu() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: run scripts/setup-nbd.sh")


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


def create(path: Path, size: str) -> Path:
    run("qemu-img", "create", "-q", "-f", "qcow2", str(path), size)
    return path


def write(image: Path, *writes: tuple[int, int, int]) -> None:
    """`qemu-io` writes of (pattern byte, offset, length)."""
    commands = [arg for p, o, n in writes for arg in ("-c", f"write -P {p:#x} {o} {n}")]
    run("qemu-io", "-f", "qcow2", *commands, str(image))


def identical(a: Path, b: Path, fmt_b: str = "qcow2") -> bool:
    done = subprocess.run(
        ["qemu-img", "compare", "-f", "qcow2", "-F", fmt_b, str(a), str(b)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


def wait_for_socket(path: Path, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


class QemuNbd:
    """`qemu-nbd` serving one image (export `vm`), stopped with SIGTERM so that persistent
    bitmaps are written back, or killed."""

    def __init__(self, image: Path, socket_path: Path, bitmap: str = "", *, writable: bool = False):
        args = ["qemu-nbd", "-t", "-f", "qcow2", "-x", "vm", "-k", str(socket_path)]
        if bitmap:
            args += ["-B", bitmap]
        if not writable:
            args.append("-r")
        socket_path.unlink(missing_ok=True)
        self.socket_path = socket_path
        self.process = subprocess.Popen([*args, str(image)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"qemu-nbd did not start: {self.process.stderr}")
            time.sleep(0.02)

    @property
    def uri(self) -> str:
        return f"nbd+unix:///vm?socket={self.socket_path}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class CountingProxy:
    """A unix-socket proxy in front of an NBD server: counts the bytes the server sends and,
    once `kill_after` of them passed, calls `on_limit` (which kills the server)."""

    def __init__(self, listen: Path, upstream: Path) -> None:
        listen.unlink(missing_ok=True)
        self.listen_path, self.upstream = listen, upstream
        self.sent = 0
        self.kill_after: int | None = None
        self.on_limit: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(listen))
        self._sock.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"nbd+unix:///vm?socket={self.listen_path}"

    def reset(self) -> int:
        with self._lock:
            sent, self.sent = self.sent, 0
            return sent

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                server.connect(str(self.upstream))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        try:
            while data := source.recv(1 << 20):
                sink.sendall(data)
                if count:
                    self._counted(len(data))
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def _counted(self, n: int) -> None:
        with self._lock:
            self.sent += n
            limit = self.kill_after is not None and self.sent >= self.kill_after
            if limit:
                self.kill_after = None
        if limit:
            self.on_limit()

    def close(self) -> None:
        self._sock.close()
        self.listen_path.unlink(missing_ok=True)
