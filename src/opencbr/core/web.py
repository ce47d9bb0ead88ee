"""Request-scoped plumbing shared by every slice's routes: the runtime and the unit of work."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from anyio import CapacityLimiter, to_thread
from anyio.lowlevel import RunVar
from fastapi import Depends, Request, params
from fastapi.datastructures import DefaultPlaceholder
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.utils import get_path_param_names
from sqlalchemy.orm import Session

from .context import Runtime

__all__ = [
    "JSONRoute",
    "OnEndpointThread",
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


# Methods that change nothing: their units of work are read-only (see `Database`).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def request_session(request: Request) -> AsyncIterator[Session]:
    """One unit of work per request: commits before the response is sent, or rolls back.
    A request with a safe method gets a read-only one.

    Opening a session does no I/O, so only its end (commit or rollback, which talk to the
    database) is handed to a thread, unless it ran without a transaction."""
    database = get_runtime(request).database
    read_only = request.method in SAFE_METHODS
    session = (database.read_sessions if read_only else database.sessions)()
    committed = False
    try:
        yield session
        committed = True
    finally:
        if read_only and database.reads_autocommit:
            session.close()  # no transaction to end: giving the connection back does no I/O
        else:
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


@dataclass(frozen=True)
class OnEndpointThread(params.Depends):
    """`Depends` on a sync dependency that a `JSONRoute` calls on its endpoint's thread, just
    before the endpoint (the caller's check, which reads the database).

    FastAPI runs each sync dependency on a worker thread of its own: one more hand-off per
    request, about a sixth of a simple read's CPU under load. Only a route whose other inputs
    cannot fail validation (path segments, the request, dependencies) takes it on its thread;
    on a route with query or body inputs it stays an ordinary dependency, so that the caller is
    still checked before those inputs are validated."""


class JSONRoute(APIRoute):
    """A route whose endpoint returns JSON-ready values (the slices' views). No response model
    is inferred from its `-> dict` annotation: FastAPI would validate the value again on a
    worker thread after the endpoint, one more hand-off per request, taken while the unit of
    work still holds its row locks (requests waiting for those locks could hold every thread).
    Its `OnEndpointThread` dependencies run on the endpoint's thread where they can."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if isinstance(kwargs.get("response_model"), DefaultPlaceholder):
            kwargs["response_model"] = None
        super().__init__(path, _with_dependencies_inline(path, endpoint), **kwargs)


def _with_dependencies_inline(path: str, endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """The endpoint, or a wrapper that calls its `OnEndpointThread` dependencies first, on the
    same thread, and asks FastAPI for their inputs instead of their results."""
    if inspect.iscoroutinefunction(endpoint):
        return endpoint
    path_params = get_path_param_names(path)
    own = inspect.signature(endpoint, eval_str=True).parameters.values()
    inline = {p.name: dependency for p in own if (dependency := _inline_dependency(p))}
    inputs = {p.name: p for p in own if p.name not in inline}
    if not inline or not all(_always_valid(p, path_params) for p in inputs.values()):
        return endpoint
    needs: dict[str, list[str]] = {}
    for name, dependency in inline.items():
        needed = inspect.signature(dependency, eval_str=True).parameters.values()
        needs[name] = [p.name for p in needed]
        for param in needed:
            if not _always_valid(param, path_params):
                return endpoint
            _merge_input(inputs, param)
    endpoint_params = list(inspect.signature(endpoint).parameters)

    @functools.wraps(endpoint)
    def run_inline(**values: Any) -> Any:
        for name, dependency in inline.items():
            values[name] = dependency(**{need: values[need] for need in needs[name]})
        return endpoint(**{name: values[name] for name in endpoint_params})

    run_inline.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in inputs.values()]
    )
    return run_inline


def _inline_dependency(param: inspect.Parameter) -> Callable[..., Any] | None:
    marker = _dependency_of(param)
    return marker.dependency if isinstance(marker, OnEndpointThread) else None


def _dependency_of(param: inspect.Parameter) -> params.Depends | None:
    if isinstance(param.default, params.Depends):
        return param.default
    if get_origin(param.annotation) is Annotated:
        for extra in get_args(param.annotation)[1:]:
            if isinstance(extra, params.Depends):
                return extra
    return None


def _merge_input(inputs: dict[str, inspect.Parameter], param: inspect.Parameter) -> None:
    known = inputs.setdefault(param.name, param)
    if (known.annotation, known.default) != (param.annotation, param.default):
        raise TypeError(f"parameter {param.name!r} is declared twice, differently")


def _always_valid(param: inspect.Parameter, path_params: set[str]) -> bool:
    """Whether FastAPI can never refuse this input: a dependency, the request, or a path
    segment taken as a string."""
    if _dependency_of(param) is not None or param.annotation is Request:
        return True
    return param.name in path_params and param.annotation is str


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(request_session, scope="function")]


def json_response(payload: dict[str, Any], status_code: int = 200) -> JSONResponse:
    """Send a payload made of JSON values (the slices' views) as it is. A plain dict returned
    from a route is first walked value by value by FastAPI's encoder, which took about 6 ms for
    a page of 50 backups, several times the cost of the query."""
    return JSONResponse(payload, status_code=status_code)
