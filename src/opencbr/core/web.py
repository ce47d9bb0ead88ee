"""Request-scoped plumbing shared by every slice's routes: the runtime and the unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from .context import Runtime

__all__ = ["RuntimeDep", "SessionDep", "get_runtime", "request_session"]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def request_session(request: Request) -> Iterator[Session]:
    """One unit of work per request: commits before the response is sent, or rolls back."""
    with get_runtime(request).database.unit_of_work() as session:
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(request_session, scope="function")]
