"""Request-scoped plumbing shared by every slice's routes: the runtime and the unit of work."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, cast, get_args, get_origin

from anyio import CapacityLimiter, to_thread
from anyio.lowlevel import RunVar
from fastapi import Depends, Request, params
from fastapi.datastructures import DefaultPlaceholder
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.utils import get_path_param_names
from sqlalchemy.orm import Session

from .context import Runtime

__all__ = [
    "DirectHandler",
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
    Its `OnEndpointThread` dependencies run on the endpoint's thread where they can, and a
    route whose inputs cannot fail validation is served by a `DirectHandler`."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if isinstance(kwargs.get("response_model"), DefaultPlaceholder):
            kwargs["response_model"] = None
        call = _with_dependencies_inline(path, endpoint)
        self.direct = DirectHandler.plan(path, call, kwargs.get("status_code"))
        super().__init__(path, call, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        if self.direct is not None and not self.dependencies:
            return self.direct.handle
        return super().get_route_handler()


@dataclass(frozen=True)
class DirectHandler:
    """Serves a route whose inputs are path segments, the request, the unit of work and
    dependencies of the request alone, without FastAPI's per-request dependency solving (a
    quarter of a short read's CPU): the request's own async dependencies (the signed body)
    are awaited on the event loop, then one thread runs its sync ones, the endpoint and the
    whole unit of work, which it commits or rolls back before the response is sent."""

    call: Callable[..., Any]
    status_code: int
    path_params: tuple[str, ...]
    request_params: tuple[str, ...]
    session_param: str | None
    on_loop: tuple[tuple[str, Callable[[Request], Awaitable[Any]]], ...]
    on_thread: tuple[tuple[str, Callable[[Request], Any]], ...]

    @classmethod
    def plan(cls, path: str, call: Callable[..., Any], status: int | None) -> DirectHandler | None:
        """The handler of `call` at `path`, or None when one of its inputs needs FastAPI."""
        if inspect.iscoroutinefunction(call):
            return None
        path_params = get_path_param_names(path)
        names: dict[str, list[str]] = {"path": [], "request": [], "session": []}
        on_loop: list[tuple[str, Any]] = []
        on_thread: list[tuple[str, Any]] = []
        for param in inspect.signature(call, eval_str=True).parameters.values():
            kind = _direct_input(param, path_params)
            if kind in names:
                names[kind].append(param.name)
            elif kind in ("loop", "thread"):
                dependency = cast("params.Depends", _dependency_of(param)).dependency
                (on_loop if kind == "loop" else on_thread).append((param.name, dependency))
            else:
                return None
        if len(names["session"]) > 1:
            return None
        return cls(
            call=call,
            status_code=status or 200,
            path_params=tuple(names["path"]),
            request_params=tuple(names["request"]),
            session_param=names["session"][0] if names["session"] else None,
            on_loop=tuple(on_loop),
            on_thread=tuple(on_thread),
        )

    async def handle(self, request: Request) -> Response:
        values: dict[str, Any] = {name: request.path_params[name] for name in self.path_params}
        for name in self.request_params:
            values[name] = request
        for name, dependency in self.on_loop:
            values[name] = await dependency(request)
        return await to_thread.run_sync(self._run, request, values)

    def _run(self, request: Request, values: dict[str, Any]) -> Response:
        for name, dependency in self.on_thread:
            values[name] = dependency(request)
        if self.session_param is None:
            return self._response(self.call(**values))
        database = get_runtime(request).database
        read_only = request.method in SAFE_METHODS
        session = (database.read_sessions if read_only else database.sessions)()
        try:
            values[self.session_param] = session
            response = self._response(self.call(**values))
            if not (read_only and database.reads_autocommit):
                session.commit()
            return response
        finally:
            session.close()  # rolls back whatever was not committed

    def _response(self, result: Any) -> Response:
        if isinstance(result, Response):
            return result
        return JSONResponse(jsonable_encoder(result), status_code=self.status_code)


def _direct_input(param: inspect.Parameter, path_params: set[str]) -> str | None:
    """How a `DirectHandler` provides this input, or None when it cannot."""
    if param.annotation is Request:
        return "request"
    dependency = _dependency_of(param)
    if dependency is None:
        return "path" if param.name in path_params and param.annotation is str else None
    if dependency.dependency is request_session:
        return "session"
    if dependency.dependency is None or not _of_request_alone(dependency.dependency):
        return None
    return "loop" if inspect.iscoroutinefunction(dependency.dependency) else "thread"


def _of_request_alone(function: Callable[..., Any]) -> bool:
    parameters = inspect.signature(function, eval_str=True).parameters.values()
    return all(param.annotation is Request for param in parameters)


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
