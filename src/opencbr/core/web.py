"""Request-scoped plumbing shared by every slice's routes: the runtime and the unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from .context import Runtime

__all__ = ["RuntimeDep", "SessionDep", "get_runtime", "json_response", "request_session"]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def request_session(request: Request) -> AsyncIterator[Session]:
    """One unit of work per request: commits before the response is sent, or rolls back.

    Opening a session does no I/O, so only its end (commit or rollback, which talk to the
    database) is handed to a worker thread."""
    session = get_runtime(request).database.sessions()
    committed = False
    try:
        yield session
        committed = True
    finally:
        await run_in_threadpool(_end, session, committed)


def _end(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
    finally:
        session.close()  # rolls back whatever was not committed


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(request_session, scope="function")]


def json_response(payload: dict[str, Any], status_code: int = 200) -> JSONResponse:
    """Send a payload made of JSON values (the slices' views) as it is. A plain dict returned
    from a route is first walked value by value by FastAPI's encoder, which took about 6 ms for
    a page of 50 backups, several times the cost of the query."""
    return JSONResponse(payload, status_code=status_code)
