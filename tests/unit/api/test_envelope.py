"""The request envelope answers an unexpected error with a JSON 500 that carries its request id,
and runs a JSON request again when the database aborted it to break a deadlock."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
from sqlalchemy.exc import OperationalError
from starlette.types import Receive, Scope, Send

from opencbr.api.app import RequestEnvelope


async def _broken_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("a bug")


async def _get(path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=RequestEnvelope(_broken_app, max_body=1024))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


def test_unexpected_errors_answer_500_with_the_request_id() -> None:
    # A thread of its own: another test's browser driver may own this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        response = pool.submit(asyncio.run, _get("/v3/anything")).result()
    assert response.status_code == 500
    body = response.json()
    assert body["error_code"] == "BackupService.9910"
    assert response.headers["x-request-id"] == body["request_id"]
    assert "a bug" not in response.text


class _DeadlockOnce:
    """An app whose first run is chosen as a deadlock victim by PostgreSQL (a real psycopg
    error, as SQLAlchemy raises it); later runs echo the request body."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        if len(self.bodies) == 1:
            victim = psycopg.errors.DeadlockDetected("deadlock detected")
            raise OperationalError("UPDATE cbr_vaults ...", {}, victim)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


async def _post(app: _DeadlockOnce, path: str, body: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=RequestEnvelope(app, max_body=1024))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(path, content=body)


def test_a_json_request_aborted_by_a_deadlock_runs_again_with_the_same_body() -> None:
    app = _DeadlockOnce()
    with ThreadPoolExecutor(1) as pool:
        response = pool.submit(
            asyncio.run, _post(app, "/v3/p/backups/b/members", b'{"a":1}')
        ).result()
    assert (response.status_code, response.content) == (200, b'{"a":1}')
    assert app.bodies == [b'{"a":1}', b'{"a":1}']


def test_a_streamed_disk_write_is_not_run_again() -> None:
    app = _DeadlockOnce()
    with ThreadPoolExecutor(1) as pool:
        response = pool.submit(
            asyncio.run, _post(app, "/v2/p/cloudvolumes/d/data", b"x" * 10)
        ).result()
    assert response.status_code == 500
    assert len(app.bodies) == 1
