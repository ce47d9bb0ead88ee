"""The ASGI application: request ids, body limits, error mapping and every slice's routes."""

from __future__ import annotations

import gc
import importlib
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import opencbr
from opencbr.cbr.files import stop_file_sessions
from opencbr.core.context import Runtime
from opencbr.core.db import is_transient_conflict
from opencbr.core.errors import AppError, BadRequest, NotFound, PayloadTooLarge, error_body
from opencbr.core.ids import new_request_id, new_uuid
from opencbr.core.json_input import is_json_content_type, json_body_problem
from opencbr.core.logging import request_context
from opencbr.core.metrics import MetricsExposition, record_request
from opencbr.core.web import FastJSONResponse, end_request_threads
from opencbr.evs.nbd import stop_nbd_server

from . import versions
from .openapi import install_openapi
from .probes import add_probes
from .route_order import not_supported_routes, specific_first
from .runtime import SLICES

__all__ = ["create_app"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("opencbr.access")

# How many times a request runs when the database aborts its transaction in a conflict.
CONFLICT_ATTEMPTS = 3

# Paths whose bodies are streamed (disk data): exempt from the JSON body limit.
STREAMED_PATHS = re.compile(r"/data/?$")


class RouteNotFound(NotFound):
    code = "APIGW.0101"
    template = "The API does not exist or has not been published: {method} {path}."


class MethodNotAllowed(BadRequest):
    status = 405
    code = "APIGW.0105"
    template = "Method {method} is not allowed on {path}."


class InternalError(AppError):
    template = "Internal error; quote request id {request_id}."


class _BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class _ReplayableBody:
    """The request body as the app receives it, counted against `limit` and, when limited
    (small JSON bodies), kept so that the request can be run again from the start."""

    def __init__(self, receive: Receive, limit: int | None) -> None:
        self._receive = receive
        self._limit = limit
        self._kept: list[Message] = []
        self._replayed = 0
        self._received = 0

    async def receive(self) -> Message:
        if self._replayed < len(self._kept):
            self._replayed += 1
            return self._kept[self._replayed - 1]
        message = await self._receive()
        if self._limit is not None and message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limit:
                raise _BodyTooLarge(self._limit)
            self._kept.append(message)
            self._replayed += 1
        return message

    def rewind(self) -> None:
        self._replayed = 0

    async def read(self) -> bytes:
        """The whole body, which the app then receives again from the start."""
        parts: list[bytes] = []
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                break
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.rewind()
        return b"".join(parts)


class RequestEnvelope:
    """Gives every request an id (echoed in `X-Request-Id`, set in the logging context) and
    enforces the body limit; counts and times each request by route template and logs it."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        root_path = scope.get("root_path", "")
        status = 500
        with request_context(request_id):
            try:
                status = await self._handle(scope, receive, send, request_id)
            finally:
                self._observe(scope, root_path, status, time.perf_counter() - started)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> int:
        """Run the app; the response's status code (500 if it raised before answering).

        A JSON request whose transaction the database aborted to break a deadlock runs again
        (its body is kept for that), so such a conflict never reaches the client."""
        limited = not STREAMED_PATHS.search(scope["path"])
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if limited and length.isdigit() and int(length) > self.max_body:
            return await self._reject(PayloadTooLarge(limit=self.max_body), request_id, send)
        body = _ReplayableBody(receive, self.max_body if limited else None)
        if limited and _may_be_json(scope):
            try:
                problem = json_body_problem(await body.read())
            except _BodyTooLarge:
                return await self._reject(PayloadTooLarge(limit=self.max_body), request_id, send)
            if problem is not None:
                return await self._reject(_invalid(Request(scope), problem), request_id, send)
        pristine = dict(scope)
        status = 500
        responded = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = int(message["status"]), True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                await self.app(scope, body.receive, send_with_id)
                return status
            except _BodyTooLarge:
                return await self._reject(PayloadTooLarge(limit=self.max_body), request_id, send)
            except Exception as error:
                rerun = limited and not responded and attempt < CONFLICT_ATTEMPTS
                if rerun and is_transient_conflict(error):
                    log.warning("database conflict in request %s, run again", request_id)
                    scope.clear()
                    scope.update(pristine)
                    body.rewind()
                    continue
                # Answer here rather than in Starlette's outermost error middleware, whose
                # reply would not carry the request id.
                log.exception("unhandled error in request %s", request_id)
                if responded:
                    raise
                return await self._reject(InternalError(request_id=request_id), request_id, send)
        return status

    @staticmethod
    def _observe(scope: Scope, root_path: str, status: int, seconds: float) -> None:
        route = _route_template(scope, root_path)
        record_request(scope["method"], route, status, seconds)
        access_log.info(
            "%s %s %d %.1fms",
            scope["method"],
            scope["path"],
            status,
            seconds * 1000,
            extra={
                "method": scope["method"],
                "path": scope["path"],
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
            },
        )

    @staticmethod
    async def _reject(error: AppError, request_id: str, send: Send) -> int:
        response = JSONResponse(error_body(error, request_id), status_code=error.status)
        response.headers["X-Request-Id"] = request_id
        await response({"type": "http"}, _no_receive, send)
        return error.status


def _may_be_json(scope: Scope) -> bool:
    """Whether the request has a body that a route may parse as JSON: one of a JSON content
    type, or of none (FastAPI then parses it as JSON)."""
    headers = dict(scope["headers"])
    if headers.get(b"content-length", b"0") == b"0" and b"transfer-encoding" not in headers:
        return False
    content_type = headers.get(b"content-type")
    return content_type is None or is_json_content_type(content_type.decode("latin-1"))


def _route_template(scope: Scope, root_path: str) -> str:
    """The matched route's path template (`/v3/{project_id}/vaults`), so ids never become
    label values; mounted apps are prefixed with their mount path."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return "unmatched"
    mounted = str(scope.get("root_path", ""))[len(root_path) :]
    if isinstance(route, Mount):
        return f"{mounted}/{{path}}"
    return mounted + template


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "")) or new_uuid()


def _render(request: Request, error: AppError) -> JSONResponse:
    return JSONResponse(error_body(error, _request_id(request)), status_code=error.status)


def _validation_error(request: Request, exc: RequestValidationError) -> AppError:
    """Wrong types or malformed JSON, in the error family of the service that was called."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    reason = (
        f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))
    )
    return _invalid(request, reason)


def _invalid(request: Request, reason: str) -> AppError:
    """A 400 for bad input, in the error family of the service that was called."""
    for prefix, error_class in _validation_classes().items():
        if prefix in request.url.path:
            return error_class(reason=reason)
    return BadRequest(reason=reason)


def _validation_classes() -> dict[str, type[AppError]]:
    """Per-service validation errors that slices register (path fragment → class)."""
    found: dict[str, type[AppError]] = {}
    for name in SLICES:
        try:
            module = importlib.import_module(f"opencbr.{name}.routes")
        except ModuleNotFoundError:
            continue
        found.update(getattr(module, "VALIDATION_ERRORS", {}))
    return found


def _install_error_handlers(app: FastAPI) -> None:
    async def app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return _render(request, exc)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _render(request, _validation_error(request, exc))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        details = {"method": request.method, "path": request.url.path}
        if exc.status_code == 405:
            return _render(request, MethodNotAllowed(**details))
        if exc.status_code == 404:
            return _render(request, RouteNotFound(**details))
        if isinstance(exc.__cause__, _BodyTooLarge):  # a chunked body past the limit
            return _render(request, PayloadTooLarge(limit=exc.__cause__.limit))
        if exc.status_code == 400:  # e.g. a body that is not UTF-8
            return _render(request, _invalid(request, str(exc.detail)))
        error = AppError(str(exc.detail))
        return JSONResponse(error_body(error, _request_id(request)), status_code=exc.status_code)

    async def value_refused_by_database(request: Request, exc: Exception) -> JSONResponse:
        """A value the schema let through but the column cannot hold (too long, too large, a
        NUL character on PostgreSQL): the unit of work rolled back, so it is bad input."""
        log.info("value refused by the database in request %s: %s", _request_id(request), exc)
        return _render(
            request, _invalid(request, "a value is too long or out of range for its field")
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = _request_id(request)
        log.exception("unhandled error in request %s", request_id)
        return _render(request, InternalError(request_id=request_id))

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(DataError, value_refused_by_database)
    app.add_exception_handler(OverflowError, value_refused_by_database)
    app.add_exception_handler(Exception, unexpected)


# The router matches a request against one route after another, so the routes of the backup
# service, which carries most requests, are tried first. No two routes match the same request,
# so the order changes nothing else (tests/unit/api/test_routes.py).
BUSIEST_SLICE = "cbr"


def _include_slice_routes(app: FastAPI) -> None:
    """Every slice's routes, added to the app's own router one by one. An included router
    (`app.include_router`) matches each request against all its routes twice, once to pick
    the router and once to pick the route: about a fifth of the CPU of a short read."""
    for name in sorted(SLICES, key=lambda name: name != BUSIEST_SLICE):
        try:
            module = importlib.import_module(f"opencbr.{name}.routes")
        except ModuleNotFoundError:
            continue
        for router in module.routers:
            app.router.routes.extend(router.routes)
    app.router.routes.extend(not_supported_routes())
    app.router.routes.extend(versions.router.routes)


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The routes FastAPI serves itself run on this event loop's default thread limiter;
        # the others on the app's request threads (`core.web.request_threads`).
        threads = runtime.settings.request_threads
        to_thread.current_default_thread_limiter().total_tokens = threads
        # What the process holds once started (modules, the app, the mappers: 170,000
        # objects) lives as long as it does: the collector's full passes no longer walk it
        # (each stopped every request of the process for 40-90 ms). Garbage is collected
        # first, so none of it is kept for good.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            stop_file_sessions(runtime)
            stop_nbd_server(runtime)
            end_request_threads(app.state)

    app = FastAPI(
        title="OpenCBR",
        version=opencbr.__version__,
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
    )
    app.state.runtime = runtime
    _install_error_handlers(app)
    _include_slice_routes(app)
    _mount_extras(app, runtime)
    app.add_middleware(RequestEnvelope, max_body=runtime.settings.max_body_bytes)
    if runtime.settings.metrics_enabled:
        _add_metrics_route(app, runtime)
    add_probes(app, runtime)
    install_openapi(app)

    app.router.routes[:] = specific_first(app.router.routes)
    return app


def _add_metrics_route(app: FastAPI, runtime: Runtime) -> None:
    """Prometheus `/metrics` (unauthenticated: bind it to a private network or filter it).

    A slice that can measure the store cheaply sets `runtime.store_size`; it is then read at
    each scrape.
    """
    exposition = MetricsExposition(
        runtime.database,
        multiproc_dir=runtime.settings.prometheus_multiproc_dir,
        store_size=runtime.store_size,
    )

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(exposition.render(), media_type=exposition.content_type)


def _mount_extras(app: FastAPI, runtime: Runtime) -> None:
    """Front-ends that sit beside the API (the web console) when they are installed."""
    try:
        console = importlib.import_module("opencbr.console.routes")
    except ModuleNotFoundError:
        return
    console.mount(app, runtime)
