"""The request envelope answers an unexpected error with a JSON 500 that carries its request id."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
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
