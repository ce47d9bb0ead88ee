"""Request-scoped plumbing shared by every slice's routes: the runtime and the unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from .context import Runtime

__all__ = ["RuntimeDep", "SessionDep", "get_runtime", "json_response", "request_session"]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def request_session(request: Request) -> Iterator[Session]:
    """One unit of work per request: commits before the response is sent, or rolls back."""
    with get_runtime(request).database.unit_of_work() as session:
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(request_session, scope="function")]


def json_response(payload: dict[str, Any], status_code: int = 200) -> JSONResponse:
    """Send a payload made of JSON values (the slices' views) as it is. A plain dict returned
    from a route is first walked value by value by FastAPI's encoder, which took about 6 ms for
    a page of 50 backups, several times the cost of the query."""
    return JSONResponse(payload, status_code=status_code)
