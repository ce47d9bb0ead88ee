"""Request-scoped plumbing shared by every slice's routes: the runtime and the unit of work."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from anyio import CapacityLimiter, to_thread
from anyio.lowlevel import RunVar
from fastapi import Depends, Request, params
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter
from sqlalchemy.orm import Session
from starlette.datastructures import State

from .context import Runtime
from .settings import Settings

__all__ = [
    "SAFE_METHODS",
    "FastJSONResponse",
    "OnEndpointThread",
    "RuntimeDep",
    "SessionDep",
    "dependency_of",
    "end_request_threads",
    "get_runtime",
    "json_response",
    "open_unit_of_work",
    "request_session",
    "request_threads",
]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


_DEFAULT_REQUEST_THREADS: int = Settings.model_fields["request_threads"].default


def request_threads(request: Request) -> ThreadPoolExecutor:
    """The app's threads for the requests' work (`Settings.request_threads` of them), made at
    first use; the app's lifespan ends them. Handing work to them takes less than half the CPU
    of anyio's `to_thread` (38 against 85 us), which keeps a limiter, a cancel scope and a
    queue of threads of its own for each hand-off."""
    state = request.app.state
    threads: ThreadPoolExecutor | None = getattr(state, "request_threads", None)
    if threads is None:
        runtime: Runtime | None = getattr(state, "runtime", None)
        size = runtime.settings.request_threads if runtime else _DEFAULT_REQUEST_THREADS
        threads = ThreadPoolExecutor(size, thread_name_prefix="request")
        state.request_threads = threads
    return threads


def end_request_threads(state: State) -> None:
    """Let the app's request threads finish their work and stop (at the end of its lifespan)."""
    threads: ThreadPoolExecutor | None = getattr(state, "request_threads", None)
    state.request_threads = None
    if threads is not None:
        threads.shutdown(wait=True)


# Ending a unit of work (COMMIT or ROLLBACK) releases the row locks it holds, so it runs on
# threads of its own: were it to queue for the request threads, requests waiting for those
# very locks could hold all of them, and nothing would move again.
ENDING_THREADS = 8
_ending_limiter: RunVar[CapacityLimiter] = RunVar("opencbr_unit_of_work_ends")


# Methods that change nothing: their units of work are read-only (see `Database`).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def open_unit_of_work(request: Request) -> tuple[Session, bool]:
    """The session of the request's unit of work, and whether it has a transaction to end. A
    request with a safe method gets a read-only one, which runs without a transaction where
    the database allows it (see `Database`). Opening a session does no I/O."""
    database = get_runtime(request).database
    read_only = request.method in SAFE_METHODS
    session = (database.read_sessions if read_only else database.sessions)()
    return session, not (read_only and database.reads_autocommit)


async def request_session(request: Request) -> AsyncIterator[Session]:
    """One unit of work per request: commits before the response is sent, or rolls back.
    Only its end (commit or rollback, which talk to the database) is handed to a thread."""
    session, transactional = open_unit_of_work(request)
    committed = False
    try:
        yield session
        committed = True
    finally:
        if transactional:
            await to_thread.run_sync(_end, session, committed, limiter=_ending_threads())
        else:
            session.close()  # no transaction to end: giving the connection back does no I/O


def _ending_threads() -> CapacityLimiter:
    """This event loop's limiter for ending units of work."""
    try:
        return _ending_limiter.get()
    except LookupError:
        limiter = CapacityLimiter(ENDING_THREADS)
        _ending_limiter.set(limiter)
        return limiter


def _end(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
    finally:
        session.close()  # rolls back whatever was not committed


@dataclass(frozen=True)
class OnEndpointThread(params.Depends):
    """`Depends` on a sync dependency that a `JSONRoute` calls on its endpoint's thread, just
    before the endpoint (the caller's check, which reads the database).

    FastAPI runs each sync dependency on a worker thread of its own: one more hand-off per
    request, about a sixth of a simple read's CPU under load. A route served by a
    `DirectHandler` runs it first on the request's one thread, before validating the query and
    the body; on a route left to FastAPI it stays an ordinary dependency. Either way the caller
    is always checked before its input is validated (an unknown caller gets a 401)."""


def dependency_of(param: inspect.Parameter) -> params.Depends | None:
    """The `Depends` marker of a parameter (as its default or in `Annotated`), if any."""
    if isinstance(param.default, params.Depends):
        return param.default
    if get_origin(param.annotation) is Annotated:
        for extra in get_args(param.annotation)[1:]:
            if isinstance(extra, params.Depends):
                return extra
    return None


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(request_session, scope="function")]


_JSON_VALUE: TypeAdapter[Any] = TypeAdapter(Any)


class FastJSONResponse(JSONResponse):
    """A JSON response rendered by pydantic-core: the bytes of Starlette's `json.dumps` (compact,
    UTF-8; a float in exponent form is written `1e-7`, not `1e-07`), 4-5 times faster (a page
    of 50 backups 573 -> 124 us)."""

    def render(self, content: Any) -> bytes:
        return _JSON_VALUE.dump_json(content)


def json_response(payload: dict[str, Any], status_code: int = 200) -> JSONResponse:
    """Send a payload made of JSON values (the slices' views) as it is. A plain dict returned
    from a route is first walked value by value by FastAPI's encoder, which took about 6 ms for
    a page of 50 backups, several times the cost of the query."""
    return FastJSONResponse(payload, status_code=status_code)
