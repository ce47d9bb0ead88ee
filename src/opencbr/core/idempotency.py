"""Idempotent create calls: a caller names a call with a client token (`X-Client-Token`), and a
retry of it (same project, same token, same request) answers what the first call answered for
`KEEP` instead of doing the work again.

The token's row is claimed in the unit of work that does the work and keeps its answer, so it
exists exactly when the work was committed: a call that failed left no row and may be retried
as it is. A retry that arrives while the first call still runs waits for it (on PostgreSQL the
row's unique key, on SQLite the write lock) and then answers the first call's answer; the work
is never done twice. The same token with another request is refused (`TokenErrors.reused`).
Tokens are per project: another project's token of the same text is another token."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import DateTime, Integer, String, Text, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from .clock import utcnow
from .context import Runtime
from .db import Base
from .errors import AppError
from .jobs import throttled

__all__ = [
    "HEADER",
    "KEEP",
    "ClientToken",
    "TokenErrors",
    "header_parameter",
    "idempotent",
    "is_idempotent",
    "purge_expired",
    "purge_tick",
]

HEADER = "X-Client-Token"
KEEP = timedelta(hours=24)
PURGE_EVERY = timedelta(minutes=10)
_TOKEN = re.compile(r"[\x21-\x7e]{1,64}")  # printable ASCII, no spaces: a UUID fits
_MARK = "__client_token__"

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


class ClientToken(Base):
    """A committed call's token, the fingerprint of its request and its answer: `status` None
    when the endpoint returned a JSON-ready value (its route gives the status), else the
    status, media type and body of the response it returned."""

    __tablename__ = "client_tokens"

    project_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    media_type: Mapped[str | None] = mapped_column(String(128), nullable=True)
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


@dataclass(frozen=True)
class TokenErrors:
    """A slice's refusals, in its error family: a malformed token (`invalid`, given a
    `reason`) and a token already used for another request (`reused`, given the `token`)."""

    invalid: type[AppError]
    reused: type[AppError]


def idempotent(errors: TokenErrors) -> Callable[[Endpoint], Endpoint]:
    """Make a create route's endpoint idempotent under `X-Client-Token` (see the module). The
    endpoint takes the unit of work (a `Session` parameter) and the path's `project_id`;
    the request is added to its inputs when it does not take it."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        signature = inspect.signature(endpoint, eval_str=True)
        parameters = list(signature.parameters.values())
        session_name = next(p.name for p in parameters if _is_session(p.annotation))
        request_name = next((p.name for p in parameters if p.annotation is Request), None)
        takes_request = request_name is not None
        if request_name is None:
            request_name = "_client_token_request"
            parameters.append(
                inspect.Parameter(request_name, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
            )

        @functools.wraps(endpoint)
        def wrapper(**arguments: Any) -> Any:
            request: Request = arguments[request_name]
            if not takes_request:
                del arguments[request_name]
            token = request.headers.get(HEADER)
            if token is None:
                return endpoint(**arguments)
            if not _TOKEN.fullmatch(token):
                raise errors.invalid(
                    reason=f"{HEADER} must be 1 to 64 printable ASCII characters without spaces"
                )
            session: Session = arguments[session_name]
            project_id = request.path_params["project_id"]
            fingerprint = _fingerprint(request, arguments.values())
            first = _claim(session, project_id, token, fingerprint)
            if first is not None:
                if first.fingerprint != fingerprint:
                    raise errors.reused(token=token)
                return _replay(first)
            answer = endpoint(**arguments)
            _keep(session, project_id, token, answer)
            return answer

        annotations = inspect.get_annotations(endpoint, eval_str=True)
        wrapper.__annotations__ = {**annotations, request_name: Request}
        del wrapper.__wrapped__  # its signature is the one below, not the endpoint's
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        setattr(wrapper, _MARK, True)
        return cast("Endpoint", wrapper)

    return decorate


def is_idempotent(endpoint: Callable[..., Any]) -> bool:
    return bool(getattr(endpoint, _MARK, False))


def header_parameter() -> dict[str, Any]:
    """The header in the OpenAPI document of an idempotent route."""
    return {
        "name": HEADER,
        "in": "header",
        "required": False,
        "description": (
            "A client token naming this call (1 to 64 printable ASCII characters): a retry by "
            "the same project with the same token and request answers the first call's answer "
            "for 24 hours without doing the work again; the same token with another request "
            "is refused (409)."
        ),
        "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[!-~]+$"},
    }


def purge_expired(session: Session, now: datetime | None = None) -> int:
    """Forget the tokens older than `KEEP`; the number forgotten."""
    cutoff = (now or utcnow()) - KEEP
    result = session.execute(delete(ClientToken).where(ClientToken.created_at <= cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


def purge_tick(runtime: Runtime, every: timedelta = PURGE_EVERY) -> Callable[[], None]:
    """A `WorkerPool.tick` hook that forgets the expired tokens."""

    def purge() -> None:
        with runtime.database.unit_of_work() as session:
            purge_expired(session)

    return throttled(every, purge, "client token purge")


def _is_session(annotation: Any) -> bool:
    return annotation is Session or getattr(annotation, "__origin__", None) is Session


def _fingerprint(request: Request, arguments: Any) -> str:
    """The request a token names: its method, path, query and validated body."""
    bodies = [a.model_dump(mode="json") for a in arguments if isinstance(a, BaseModel)]
    named = {
        "method": request.method,
        "path": request.url.path,
        "query": sorted(request.query_params.multi_items()),
        "body": bodies,
    }
    return hashlib.sha256(json.dumps(named, sort_keys=True).encode()).hexdigest()


def _claim(session: Session, project_id: str, token: str, fingerprint: str) -> ClientToken | None:
    """The committed call of this token, or None when this call claimed it (its row is added
    to the unit of work, and waits there for `_keep`). A claim that meets a concurrent one
    waits for it to end: the winner's row once it commits, this call's claim if it failed."""
    key = (project_id, token)
    found = session.get(ClientToken, key)
    if found is not None and found.created_at > utcnow() - KEEP:
        return found
    if found is not None:  # expired, not yet purged: a new call
        session.delete(found)
        session.flush()
    try:
        with session.begin_nested():
            session.add(ClientToken(project_id=project_id, token=token, fingerprint=fingerprint))
    except IntegrityError:
        return session.get(ClientToken, key, populate_existing=True)
    return None


def _keep(session: Session, project_id: str, token: str, answer: Any) -> None:
    row = session.get(ClientToken, (project_id, token))
    assert row is not None  # claimed in this unit of work
    if isinstance(answer, Response):
        row.status, row.media_type = answer.status_code, answer.media_type
        row.body = bytes(answer.body).decode()
    else:
        row.body = json.dumps(jsonable_encoder(answer))
    session.flush()


def _replay(row: ClientToken) -> Any:
    if row.status is None:
        return json.loads(row.body)
    return Response(content=row.body, status_code=row.status, media_type=row.media_type)
