"""`OnEndpointThread` dependencies run on their endpoint's thread on a route served directly,
and stay ordinary dependencies (checked before validation) on a route left to FastAPI."""

# No `from __future__ import annotations`: the routes below are made inside functions, and
# their annotations name local types, which a string annotation could not be resolved to.

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.routing import APIRoute

from opencbr.core.routing import JSONRoute
from opencbr.core.web import OnEndpointThread

# Set by the caller check. Each hand-off to a worker thread runs in a copy of the event loop's
# context, so the endpoint sees the value only when the check ran in its own hand-off.
_checked_here: contextvars.ContextVar[str | None] = contextvars.ContextVar("checked_here")


class _Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def caller(self, project_id: str, request: Request) -> str:
        _checked_here.set(project_id)
        self.seen.append(("caller", project_id))
        if request.headers.get("x-caller") != "alice":
            raise HTTPException(401, "who are you")
        return f"alice in {project_id}"


def _app(calls: _Calls) -> tuple[FastAPI, list[str]]:
    CallerDep = Annotated[str, OnEndpointThread(calls.caller)]  # noqa: N806
    router = APIRouter(prefix="/p/{project_id}", route_class=JSONRoute)
    endpoint_names: list[str] = []

    @router.get("/things/{thing_id}")
    def show_thing(thing_id: str, caller: CallerDep) -> dict[str, Any]:
        calls.seen.append(("endpoint", _checked_here.get(None)))
        return {"thing": thing_id, "caller": caller}

    # A list-valued query input keeps the route with FastAPI (no `DirectHandler`).
    @router.get("/things")
    def list_things(
        caller: CallerDep, limit: int = 10, tag: Annotated[list[str] | None, Query()] = None
    ) -> dict[str, Any]:
        calls.seen.append(("endpoint", _checked_here.get(None)))
        return {"limit": limit, "caller": caller}

    app = FastAPI()
    app.include_router(router)
    routes = [route for route in router.routes if isinstance(route, APIRoute)]
    endpoint_names.extend(route.endpoint.__name__ for route in routes)
    return app, endpoint_names


def _get(app: FastAPI, path: str, headers: dict[str, str]) -> httpx.Response:
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers=headers)

    # A thread of its own: another test's browser driver may own this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, get()).result()


def test_a_route_with_only_path_inputs_checks_its_caller_on_the_endpoint_thread() -> None:
    calls = _Calls()
    app, names = _app(calls)

    response = _get(app, "/p/p1/things/t1", {"x-caller": "alice"})

    assert response.status_code == 200
    assert response.json() == {"thing": "t1", "caller": "alice in p1"}
    assert calls.seen == [("caller", "p1"), ("endpoint", "p1")]  # one hand-off for both
    assert names == ["show_thing", "list_things"]  # the wrapper keeps the endpoint's name


def test_a_refused_caller_never_reaches_the_endpoint() -> None:
    calls = _Calls()
    app, _ = _app(calls)

    response = _get(app, "/p/p1/things/t1", {})

    assert response.status_code == 401
    assert calls.seen == [("caller", "p1")]


def test_a_route_with_query_inputs_checks_the_caller_before_validating_them() -> None:
    calls = _Calls()
    app, _ = _app(calls)

    refused = _get(app, "/p/p1/things?limit=many", {})
    assert refused.status_code == 401  # not a validation error for an unknown caller

    listed = _get(app, "/p/p1/things?limit=3", {"x-caller": "alice"})
    assert listed.json() == {"limit": 3, "caller": "alice in p1"}
    # An ordinary dependency, on a hand-off of its own, before the endpoint's.
    assert calls.seen == [("caller", "p1"), ("caller", "p1"), ("endpoint", None)]
