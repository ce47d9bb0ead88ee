"""Routes of the slices: `JSONRoute`, served where it can be by a `DirectHandler`, which
takes a request's inputs, its caller's check, its endpoint and its unit of work in one hand-off
to a thread, without FastAPI's per-request dependency solving."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import types
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Union, cast, get_args, get_origin

from fastapi import HTTPException, Request, params
from fastapi.datastructures import DefaultPlaceholder
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.utils import get_path_param_names, is_body_allowed_for_status_code
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from .idempotency import header_parameter, is_idempotent
from .json_input import is_json_content_type
from .web import (
    FastJSONResponse,
    OnEndpointThread,
    dependency_of,
    open_unit_of_work,
    request_session,
    request_threads,
)

__all__ = ["DirectHandler", "JSONRoute"]


class JSONRoute(APIRoute):
    """A route whose endpoint returns JSON-ready values (the slices' views). Its response model
    only documents the answer (`_describe_only`): FastAPI would validate the value again on a
    worker thread after the endpoint, one more hand-off per request, taken while the unit of
    work still holds its row locks (requests waiting for those locks could hold every thread).

    A route whose inputs a `DirectHandler` can provide is served by one; any other is served by
    FastAPI, where an `OnEndpointThread` check is an ordinary dependency (solved, on a thread of
    its own, before the route's other inputs are validated)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        _describe_only(kwargs)
        if is_idempotent(endpoint):
            extra = dict(kwargs.get("openapi_extra") or {})
            extra["parameters"] = [*extra.get("parameters", []), header_parameter()]
            kwargs["openapi_extra"] = extra
        if inspect.signature(endpoint, eval_str=True).return_annotation is Response:
            kwargs["response_class"] = Response  # no JSON body: documented without one
        direct = None if kwargs.get("dependencies") else DirectHandler.plan(path, endpoint)
        self.direct = direct
        super().__init__(path, endpoint, **kwargs)
        if direct is not None:
            direct.status_code = self.status_code or 200

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        if self.direct is not None:
            return self.direct.handle
        return super().get_route_handler()


def _describe_only(route: dict[str, Any]) -> None:
    """A route's `response_model` describes its answer in the OpenAPI document and is never
    applied to it: the slices' views build the bodies (a test checks that they match), and
    FastAPI would otherwise validate and rebuild every body through the model."""
    model = route.get("response_model")
    route["response_model"] = None
    if model is None or isinstance(model, DefaultPlaceholder):
        return
    status = route.get("status_code")
    if isinstance(status, DefaultPlaceholder) or status is None:
        status = 200
    responses = dict(route.get("responses") or {})
    responses[status] = {**responses.get(status, {}), "model": model}
    route["responses"] = responses


# Where a `DirectHandler` takes an input from: a path segment (by name), a query parameter, the
# request, the unit of work, the JSON body, or a dependency (by its function: its result serves
# every parameter that names it, as FastAPI caches a dependency within a request).
Source = tuple[str, Any]
REQUEST: Source = ("request", None)
SESSION: Source = ("session", None)
BODY: Source = ("body", None)


@dataclass(frozen=True, eq=False)  # a key of the values known in a request: by identity
class _Query:
    """A query parameter of one value, validated as FastAPI validates it; when absent, its
    default (`inspect.Parameter.empty`: required)."""

    name: str
    adapter: TypeAdapter[Any]
    default: Any

    def value(self, request: Request) -> Any:
        raw = request.query_params.get(self.name)
        if raw is None:
            if self.default is inspect.Parameter.empty:
                raise _QueryError(
                    {"type": "missing", "loc": ("query", self.name), "msg": "Field required"}
                )
            return self.default
        try:
            return self.adapter.validate_python(raw)
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            raise _QueryError({**first, "loc": ("query", self.name, *first["loc"])}) from error


class _QueryError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["msg"])
        self.error = error


@dataclass(frozen=True)
class _Call:
    function: Callable[..., Any]
    arguments: tuple[tuple[str, Source], ...]  # parameter name -> where its value comes from


@dataclass
class DirectHandler:
    """Serves a route without FastAPI's per-request dependency solving (a quarter of a short
    read's CPU) and with one thread hand-off. Its inputs are path segments, query parameters
    of one plain value, the request, the unit of work, dependencies of the request alone,
    `OnEndpointThread` checks of those, and at most one JSON body model. The async
    dependencies (the signed body) and the body are read on the event loop; then one thread
    opens the unit of work, runs the checks (the caller's), validates the query and the body,
    runs the endpoint and commits, or rolls back on an error, before the response is sent. The
    caller is checked before its input is validated, so an unknown caller gets a 401 whatever
    it sent."""

    endpoint: _Call
    checks: tuple[_Call, ...]
    queries: tuple[_Query, ...]
    on_loop: tuple[Callable[[Request], Awaitable[Any]], ...]
    on_thread: tuple[Callable[[Request], Any], ...]
    body: TypeAdapter[Any] | None
    uses_session: bool
    status_code: int = 200

    @classmethod
    def plan(cls, path: str, endpoint: Callable[..., Any]) -> DirectHandler | None:
        """The handler of `endpoint` at `path`, or None when one of its inputs needs FastAPI."""
        if inspect.iscoroutinefunction(endpoint):
            return None
        path_params = get_path_param_names(path)
        checks: list[_Call] = []
        call = _direct_call(endpoint, path_params, checks)
        if call is None:
            return None
        dependencies = {
            source[1]
            for each in (*checks, call)
            for _, source in each.arguments
            if source[0] == "dependency" and source[1] not in {c.function for c in checks}
        }
        annotations = inspect.get_annotations(endpoint, eval_str=True)
        model = next((annotations[name] for name, s in call.arguments if s == BODY), None)
        return cls(
            endpoint=call,
            checks=tuple(checks),
            queries=tuple(s[1] for _, s in call.arguments if s[0] == "query"),
            on_loop=tuple(d for d in dependencies if inspect.iscoroutinefunction(d)),
            on_thread=tuple(d for d in dependencies if not inspect.iscoroutinefunction(d)),
            body=TypeAdapter(model) if model is not None else None,
            uses_session=any(s == SESSION for c in (*checks, call) for _, s in c.arguments),
        )

    async def handle(self, request: Request) -> Response:
        known: dict[Source, Any] = {REQUEST: request}
        for dependency in self.on_loop:
            known[("dependency", dependency)] = await dependency(request)
        if self.body is not None:
            known[BODY] = await request.body()
        work = functools.partial(self._run, request, known)
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # the request's id, for its log lines
        return await loop.run_in_executor(request_threads(request), context.run, work)

    def _run(self, request: Request, known: dict[Source, Any]) -> Response:
        for dependency in self.on_thread:
            known[("dependency", dependency)] = dependency(request)
        if not self.uses_session:
            return self._respond(request, known)
        session, transactional = open_unit_of_work(request)
        known[SESSION] = session
        try:
            response = self._respond(request, known)
            if transactional:
                session.commit()
            return response
        finally:
            session.close()  # rolls back whatever was not committed

    def _respond(self, request: Request, known: dict[Source, Any]) -> Response:
        """The checks, the validation of the query and of the body, and the endpoint, in the
        order FastAPI takes them."""
        for check in self.checks:
            known[("dependency", check.function)] = _invoke(check, request, known)
        errors = []
        for query in self.queries:
            try:
                known[("query", query)] = query.value(request)
            except _QueryError as error:
                errors.append(error.error)
        if errors:
            raise RequestValidationError(errors)
        if self.body is not None:
            known[BODY] = _parse_body(self.body, request, known[BODY])
        result = _invoke(self.endpoint, request, known)
        if isinstance(result, Response):
            return result
        if not is_body_allowed_for_status_code(self.status_code):  # 204, 304: no body at all
            return Response(status_code=self.status_code)
        return FastJSONResponse(jsonable_encoder(result), status_code=self.status_code)


def _invoke(call: _Call, request: Request, known: dict[Source, Any]) -> Any:
    arguments = {
        name: request.path_params[source[1]] if source[0] == "path" else known[source]
        for name, source in call.arguments
    }
    return call.function(**arguments)


def _direct_call(
    function: Callable[..., Any], path_params: set[str], checks: list[_Call] | None
) -> _Call | None:
    """`function` with the source of each of its inputs, and its `OnEndpointThread` checks
    added to `checks` (None: a check's own inputs, which take no checks, query or body); None
    when an input has no source."""
    arguments: list[tuple[str, Source]] = []
    for param in inspect.signature(function, eval_str=True).parameters.values():
        source = _direct_source(param, path_params)
        marker = dependency_of(param)
        if source is None and checks is not None and isinstance(marker, OnEndpointThread):
            check = _direct_call(cast("Callable[..., Any]", marker.dependency), path_params, None)
            if check is None:
                return None
            checks.append(check)
            source = ("dependency", check.function)
        if source is None or (checks is None and source[0] in ("body", "query")):
            return None  # a check's input is validated before the query and the body
        if source == BODY and BODY in dict(arguments).values():
            return None
        arguments.append((param.name, source))
    return _Call(function, tuple(arguments))


def _direct_source(param: inspect.Parameter, path_params: set[str]) -> Source | None:
    """Where a `DirectHandler` takes this input from, if it can (not `OnEndpointThread`)."""
    if param.annotation is Request:
        return REQUEST
    marker = dependency_of(param)
    if marker is None:
        if param.name in path_params:
            return ("path", param.name) if param.annotation is str else None
        if isinstance(param.annotation, type) and issubclass(param.annotation, BaseModel):
            return BODY if param.default is inspect.Parameter.empty else None
        query = _query_input(param)
        return ("query", query) if query is not None else None
    dependency = marker.dependency
    if dependency is request_session:
        return SESSION
    if dependency is None or isinstance(marker, OnEndpointThread):
        return None
    parameters = inspect.signature(dependency, eval_str=True).parameters.values()
    return ("dependency", dependency) if all(p.annotation is Request for p in parameters) else None


# Query values a `DirectHandler` validates itself; lists, aliases, headers and cookies stay
# with FastAPI.
_QUERY_TYPES = frozenset({str, int, float, bool})


def _query_input(param: inspect.Parameter) -> _Query | None:
    """A query parameter of one plain value (`limit: int = 10`, `Annotated[str | None,
    Query(max_length=255)] = None`), or None."""
    if isinstance(param.default, FieldInfo):  # `= Query(...)`: FastAPI's
        return None
    base, extras = param.annotation, []
    if get_origin(base) is Annotated:
        base, *extras = get_args(base)
    for extra in extras:
        if not isinstance(extra, params.Query) or extra.alias or extra.validation_alias:
            return None
    kinds = [t for t in get_args(base) if t is not type(None)] if _is_union(base) else [base]
    if not kinds or not all(kind in _QUERY_TYPES for kind in kinds):
        return None
    return _Query(param.name, TypeAdapter(param.annotation), param.default)


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _parse_body(model: TypeAdapter[Any], request: Request, body: bytes) -> Any:
    """The body validated as FastAPI validates a single JSON body: parsed as JSON when its
    content type says it is, errors located under `body`."""
    if not body:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    value: Any = body
    if is_json_content_type(request.headers.get("content-type")):
        try:
            value = json.loads(body)
        except json.JSONDecodeError as error:
            invalid = {
                "type": "json_invalid",
                "loc": ("body", error.pos),
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": error.msg},
            }
            raise RequestValidationError([invalid]) from error
        except ValueError as error:  # not UTF-8
            raise HTTPException(400, "There was an error parsing the body") from error
    try:
        return model.validate_python(value, from_attributes=True)
    except ValidationError as error:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        raise RequestValidationError(errors) from error
