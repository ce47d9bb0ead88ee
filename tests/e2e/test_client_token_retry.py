"""The CLI's client retries a create call once when its connection is reset after the service
did the work: the retry carries the same client token, so it answers the first call's answer
and nothing is made twice. A loopback proxy forwards each exchange and resets the client's
connection instead of answering the first one."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from opencbr.cbr.models import Vault
from opencbr.cli.client import Client, Profile
from opencbr.core.context import Runtime
from tests.conftest import LiveServer, TenantFactory


def _read_message(conn: socket.socket, buffered: bytes) -> tuple[bytes, bytes] | None:
    """One HTTP message (head and `Content-Length` body) and what followed it; None at EOF."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        rest += chunk
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


class ResettingProxy:
    """Forwards HTTP/1.1 exchanges to `upstream`; the first answer is dropped and the client's
    connection reset (RST) instead."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.exchanges = 0
        self.lock = threading.Lock()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        with conn, socket.create_connection(self.upstream) as up:
            from_client, from_up = b"", b""
            while (request := _read_message(conn, from_client)) is not None:
                message, from_client = request
                up.sendall(message)
                answer = _read_message(up, from_up)
                if answer is None:
                    return
                with self.lock:
                    self.exchanges += 1
                    first = self.exchanges == 1
                if first:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                conn.sendall(answer[0])
                from_up = answer[1]


@pytest.fixture
def proxy(server: LiveServer) -> Iterator[ResettingProxy]:
    made = ResettingProxy(server.url)
    thread = threading.Thread(target=made.serve, daemon=True)
    thread.start()
    yield made
    made.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
    made.listener.close()
    thread.join(timeout=10)


def test_a_create_call_reset_after_the_work_is_retried_once_and_made_once(
    runtime: Runtime, proxy: ResettingProxy, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    project = creds.projects["region-1"]
    client = Client(Profile(proxy.url, creds.access_key, creds.secret_key, project))
    billing = {
        "object_type": "disk",
        "protect_type": "backup",
        "consistent_level": "crash_consistent",
        "size": 10,
    }
    body = {"vault": {"name": "retried", "resources": [], "billing": billing}}
    made = client.create(f"/v3/{project}/vaults", body)["vault"]
    assert proxy.exchanges == 2  # the reset one, and its retry
    with runtime.database.unit_of_work() as session:
        vaults = session.scalars(select(Vault.id).where(Vault.project_id == project)).all()
    assert vaults == [made["id"]]
