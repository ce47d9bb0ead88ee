"""Routes whose inputs cannot fail validation are served by a `DirectHandler`: the caller's
check, the endpoint and the whole unit of work on one thread, committed before the response,
rolled back on an error; routes with other inputs keep FastAPI's handling."""

# No `from __future__ import annotations`: the routes below are made inside a function, and
# their annotations name local types, which a string annotation could not be resolved to.

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy import text

from opencbr.api.app import create_app
from opencbr.core.context import Runtime
from opencbr.core.errors import ProjectNotFound, Unauthenticated
from opencbr.core.logging import current_request_id
from opencbr.core.routing import JSONRoute
from opencbr.core.web import OnEndpointThread, SessionDep


def _caller(project_id: str, request: Request, session: SessionDep) -> str:
    """A caller check that reads the database in the request's unit of work."""
    assert session.execute(text("SELECT 1")).scalar() == 1
    if "x-caller" not in request.headers:
        raise Unauthenticated(reason="no caller")
    return f"{request.headers['x-caller']} in {project_id}"


class NoteText(BaseModel):
    text: str = Field(max_length=5)


CallerDep = Annotated[str, OnEndpointThread(_caller)]


@pytest.fixture
def app(runtime: Runtime) -> Iterator[FastAPI]:
    """The service's app with a few routes of its own over a `notes` table (dropped after)."""
    with runtime.database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (id VARCHAR(36))"))
    try:
        yield _app(runtime)
    finally:
        with runtime.database.engine.begin() as connection:
            connection.execute(text("DROP TABLE notes"))


def _app(runtime: Runtime) -> FastAPI:
    router = APIRouter(prefix="/p/{project_id}", route_class=JSONRoute)

    @router.put("/notes/{note_id}", status_code=201)
    def put_note(note_id: str, caller: CallerDep, session: SessionDep) -> dict[str, Any]:
        session.execute(text("INSERT INTO notes (id) VALUES (:id)"), {"id": note_id})
        return {"note": note_id, "caller": caller}

    @router.post("/notes/{note_id}/fail")
    def put_then_fail(note_id: str, caller: CallerDep, session: SessionDep) -> None:
        session.execute(text("INSERT INTO notes (id) VALUES (:id)"), {"id": note_id})
        raise ProjectNotFound(project_id=note_id)

    @router.get("/notes/{note_id}")
    def show_note(note_id: str, caller: CallerDep, session: SessionDep) -> dict[str, Any]:
        found = session.execute(text("SELECT id FROM notes WHERE id = :id"), {"id": note_id})
        return {"note": found.scalar()}

    @router.post("/notes/{note_id}/text")
    def set_text(
        note_id: str, body: NoteText, caller: CallerDep, session: SessionDep
    ) -> dict[str, Any]:
        return {"note": note_id, "text": body.text}

    @router.delete("/notes/{note_id}", status_code=204)
    def delete_note(note_id: str, caller: CallerDep, session: SessionDep) -> None:
        session.execute(text("DELETE FROM notes WHERE id = :id"), {"id": note_id})

    @router.get("/whoami")
    def whoami(caller: CallerDep) -> dict[str, Any]:
        return {"request_id": current_request_id(), "thread": threading.current_thread().name}

    @router.get("/note-search")
    def find_notes(
        caller: CallerDep, session: SessionDep, id: Annotated[list[str], Query()]
    ) -> dict[str, Any]:
        rows = session.execute(text("SELECT id FROM notes ORDER BY id"))
        return {"notes": [row.id for row in rows if row.id in id]}

    @router.get("/notes")
    def list_notes(
        caller: CallerDep, session: SessionDep, limit: Annotated[int, Query(ge=1)] = 10
    ) -> dict[str, Any]:
        rows = session.execute(text("SELECT id FROM notes ORDER BY id LIMIT :n"), {"n": limit})
        return {"notes": [row.id for row in rows]}

    return _serving(runtime, router)


def _serving(runtime: Runtime, router: APIRouter) -> FastAPI:
    """The service's app with the router's routes tried first."""
    app = create_app(runtime)
    app.router.routes[:0] = router.routes
    return app


def _call(
    app: FastAPI,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    headers = (
        {"x-caller": "alice", "content-type": "application/json"} if headers is None else headers
    )

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, content=body, headers=headers)

    # A thread of its own: another test's browser driver may own this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, call()).result()


def _direct(app: FastAPI, name: str) -> bool:
    route = next(r for r in app.router.routes if isinstance(r, APIRoute) and r.name == name)
    assert isinstance(route, JSONRoute)
    return route.direct is not None


def test_routes_whose_inputs_it_can_validate_are_served_directly(app: FastAPI) -> None:
    assert _direct(app, "put_note")
    assert _direct(app, "show_note")
    assert _direct(app, "list_notes")
    assert not _direct(app, "find_notes")  # a list-valued query input: FastAPI's
    assert _direct(app, "show_backup")  # the service's own routes
    assert _direct(app, "list_backups")


def test_query_values_are_validated_after_the_caller_is_checked(app: FastAPI) -> None:
    _call(app, "PUT", "/p/p1/notes/n1")

    assert _call(app, "GET", "/p/p1/notes?limit=3&limit=1").json() == {"notes": ["n1"]}
    assert _call(app, "GET", "/p/p1/notes?limit=many", headers={}).status_code == 401
    refused = _call(app, "GET", "/p/p1/notes?limit=0")
    assert refused.status_code == 400
    assert refused.json()["error_msg"] == (
        "Invalid request: query.limit: Input should be greater than or equal to 1"
    )
    found = _call(app, "GET", "/p/p1/note-search?id=n1")  # FastAPI's own validation
    assert found.json() == {"notes": ["n1"]}


def test_a_direct_write_is_committed_before_its_response(app: FastAPI) -> None:
    created = _call(app, "PUT", "/p/p1/notes/n1")

    assert created.status_code == 201  # the route's own status code
    assert created.json() == {"note": "n1", "caller": "alice in p1"}
    assert _call(app, "GET", "/p/p1/notes/n1").json() == {"note": "n1"}
    assert _call(app, "GET", "/p/p1/notes?limit=5").json() == {"notes": ["n1"]}

    deleted = _call(app, "DELETE", "/p/p1/notes/n1")
    assert (deleted.status_code, deleted.content) == (204, b"")  # no body, not `null`
    assert _call(app, "GET", "/p/p1/notes/n1").json() == {"note": None}


def test_an_error_rolls_the_direct_unit_of_work_back(app: FastAPI) -> None:
    failed = _call(app, "POST", "/p/p1/notes/n2/fail")

    assert failed.status_code == ProjectNotFound.status
    assert failed.json()["error_code"] == ProjectNotFound.code
    assert failed.headers["x-request-id"] == failed.json()["request_id"]
    # The insert before the error was rolled back.
    assert _call(app, "GET", "/p/p1/notes/n2").json() == {"note": None}


def test_each_function_takes_its_inputs_from_its_own_declarations(runtime: Runtime) -> None:
    def header_project(request: Request) -> str:
        return request.headers.get("x-caller", "")

    def caller(project_id: Annotated[str, Depends(header_project)]) -> str:
        return f"caller's {project_id}"

    app = _checked_by(runtime, caller)

    assert _direct(app, "show")
    assert _call(app, "GET", "/q/p7").json() == {"project": "p7", "who": "caller's alice"}


def _checked_by(runtime: Runtime, check: Callable[..., str]) -> FastAPI:
    """The app with one more route, `/q/{project_id}`, whose caller `check` checks."""
    router = APIRouter(route_class=JSONRoute)

    @router.get("/q/{project_id}")
    def show(project_id: str, who: Annotated[str, OnEndpointThread(check)]) -> dict[str, str]:
        return {"project": project_id, "who": who}

    return _serving(runtime, router)


def test_a_body_is_validated_after_the_caller_is_checked(app: FastAPI) -> None:
    path = "/p/p1/notes/n3/text"

    assert _call(app, "POST", path, b'{"text": "hi"}').json() == {"note": "n3", "text": "hi"}
    assert _call(app, "POST", path, b"{not json", headers={}).status_code == 401
    malformed = _call(app, "POST", path, b"{not json")
    assert malformed.status_code == 400
    assert "JSON decode error" in malformed.json()["error_msg"]
    too_long = _call(app, "POST", path, b'{"text": "too long"}')
    assert too_long.status_code == 400
    assert too_long.json()["error_msg"].startswith("Invalid request: text:")
    empty = _call(app, "POST", path, b"")
    assert (empty.status_code, "Field required" in empty.json()["error_msg"]) == (400, True)
    plain = _call(
        app, "POST", path, b'{"text": "hi"}', {"x-caller": "a", "content-type": "text/plain"}
    )
    assert plain.status_code == 400  # not declared JSON: not read as JSON


def test_a_check_with_a_query_input_leaves_the_route_to_fastapi(runtime: Runtime) -> None:
    def caller(tenant: str) -> str:  # a query input of the check itself
        return f"caller of {tenant}"

    app = _checked_by(runtime, caller)

    assert not _direct(app, "show")
    assert _call(app, "GET", "/q/p1?tenant=acme").json() == {
        "project": "p1",
        "who": "caller of acme",
    }


def test_the_endpoint_runs_on_a_request_thread_in_the_request_s_context(
    runtime: Runtime, app: FastAPI
) -> None:
    """The work runs on the app's request threads (as many as the settings say), and sees the
    request's id, which its log lines carry."""
    answers = [
        _call(app, "GET", "/p/p1/whoami") for _ in range(2 * runtime.settings.request_threads)
    ]
    for answer in answers:
        assert answer.status_code == 200
        assert answer.json()["request_id"] == answer.headers["x-request-id"]
    threads = {answer.json()["thread"] for answer in answers}
    assert all(name.startswith("request") for name in threads)
    assert len({a.headers["x-request-id"] for a in answers}) == len(answers)
