"""Request-scoped plumbing shared by every slice's routes: the runtime and the unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from anyio import CapacityLimiter, to_thread
from anyio.lowlevel import RunVar
from fastapi import Depends, Request
from fastapi.datastructures import DefaultPlaceholder
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from .context import Runtime

__all__ = [
    "JSONRoute",
    "RuntimeDep",
    "SessionDep",
    "get_runtime",
    "json_response",
    "request_session",
]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


# Ending a unit of work (COMMIT or ROLLBACK) releases the row locks it holds, so it runs on
# threads of its own: were it to queue for the request threads, requests waiting for those
# very locks could hold all of them, and nothing would move again.
ENDING_THREADS = 8
_ending_limiter: RunVar[CapacityLimiter] = RunVar("opencbr_unit_of_work_ends")


async def request_session(request: Request) -> AsyncIterator[Session]:
    """One unit of work per request: commits before the response is sent, or rolls back.

    Opening a session does no I/O, so only its end (commit or rollback, which talk to the
    database) is handed to a thread."""
    session = get_runtime(request).database.sessions()
    committed = False
    try:
        yield session
        committed = True
    finally:
        await to_thread.run_sync(_end, session, committed, limiter=_ending_threads())


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


class JSONRoute(APIRoute):
    """A route whose endpoint returns JSON-ready values (the slices' views). No response model
    is inferred from its `-> dict` annotation: FastAPI would validate the value again on a
    worker thread after the endpoint, one more hand-off per request, taken while the unit of
    work still holds its row locks (requests waiting for those locks could hold every thread)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if isinstance(kwargs.get("response_model"), DefaultPlaceholder):
            kwargs["response_model"] = None
        super().__init__(path, endpoint, **kwargs)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(request_session, scope="function")]


def json_response(payload: dict[str, Any], status_code: int = 200) -> JSONResponse:
    """Send a payload made of JSON values (the slices' views) as it is. A plain dict returned
    from a route is first walked value by value by FastAPI's encoder, which took about 6 ms for
    a page of 50 backups, several times the cost of the query."""
    return JSONResponse(payload, status_code=status_code)
