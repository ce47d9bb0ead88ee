"""Authenticating API requests: SDK-HMAC-SHA256 signatures or tokens, then project scope."""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor, Runtime
from opencbr.core.errors import ProjectNotFound, SignatureInvalid, Unauthenticated
from opencbr.core.web import OnEndpointThread, SessionDep, get_runtime

from . import service, signing
from .errors import LoginFailed
from .service import Principal, ProjectScope

__all__ = [
    "ActorDep",
    "PrincipalDep",
    "SignedBodyDep",
    "StreamedBodyDep",
    "authenticate",
    "caller",
    "project_actor",
]

log = logging.getLogger(__name__)


def _claims_unsigned(request: Request) -> bool:
    return request.headers.get("x-sdk-content-sha256") == signing.UNSIGNED_PAYLOAD


def _payload_hash(request: Request, body: bytes | None) -> str:
    """The body hash the client signed: None stands for a body left unsigned, which only
    `streamed_body` gives. An empty body the client called unsigned (as the SDK does for a
    content type that is not JSON) has nothing left out of the signature."""
    if body is None or (not body and _claims_unsigned(request)):
        return signing.UNSIGNED_PAYLOAD
    if not body:
        return signing.EMPTY_SHA256
    return hashlib.sha256(body).hexdigest()


def _verify(
    runtime: Runtime, session: Session, request: Request, body: bytes | None, project_id: str | None
) -> tuple[Principal, ProjectScope | None]:
    """The signer, and the project `project_id` when it is the signer's (read with the key)."""
    try:
        auth = signing.parse_authorization(request.headers["authorization"])
        headers = {name: request.headers.get(name) for name in auth.signed_headers}
        if any(value is None for value in headers.values()):
            raise signing.SignatureError("a signed header is missing")
        skew = timedelta(seconds=runtime.settings.signature_skew_seconds)
        signing.check_date(headers["x-sdk-date"] or "", utcnow(), skew)
        project: ProjectScope | None = None
        if project_id is None:
            secret, principal = service.resolve_access_key(
                session, runtime.root_key, auth.access_key
            )
        else:
            secret, principal, project = service.resolve_access_key_in_project(
                session, runtime.root_key, auth.access_key, project_id
            )
        raw_path: bytes | None = request.scope.get("raw_path")  # the path as it was sent
        canonical = signing.canonical_request(
            request.method,
            request.url.path if raw_path is None else raw_path.decode("latin-1"),
            request.scope.get("query_string", b"").decode("latin-1"),
            {k: v or "" for k, v in headers.items()},
            auth.signed_headers,
            _payload_hash(request, body),
        )
        expected = signing.signature(secret, headers["x-sdk-date"] or "", canonical)
    except (signing.SignatureError, LoginFailed) as exc:
        log.info("signature refused: %s", exc)
        raise SignatureInvalid() from exc
    if not _constant_time_equal(expected, auth.signature):
        raise SignatureInvalid()
    return principal, project


def _constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _from_token(session: Session, token: str) -> Principal:
    try:
        return service.resolve_token(session, token)
    except LoginFailed as exc:
        raise Unauthenticated(reason="the token is invalid or expired") from exc


def _signed(request: Request) -> bool:
    """Whether the request is signed (not sent with a token): then its body is verified."""
    signed = request.headers.get("authorization", "").startswith(signing.ALGORITHM + " ")
    return signed and not request.headers.get("x-auth-token")


async def signed_body(request: Request) -> bytes | None:
    """The body a signature covers, read on the event loop before the request's work moves to
    a thread; None when nothing signs it (a token, or no signature at all), so a request that
    will be refused is not read. Whatever `X-Sdk-Content-Sha256` claims, the body is hashed:
    a route whose body is parsed never acts on bytes nobody signed."""
    return await request.body() if _signed(request) else None


async def streamed_body(request: Request) -> bytes | None:
    """`signed_body` for the route of a disk data stream, the one route whose body may be left
    out of the signature (`UNSIGNED-PAYLOAD`, as the SDK sends non-JSON bodies): then None,
    and the body is streamed to the disk as it arrives rather than read here."""
    if _claims_unsigned(request):
        return None
    return await signed_body(request)


SignedBodyDep = Annotated[bytes | None, Depends(signed_body)]
StreamedBodyDep = Annotated[bytes | None, Depends(streamed_body)]


def caller(request: Request, session: Session, body: bytes | None) -> Principal:
    """The caller, from an `X-Auth-Token` or a signature (SDK-HMAC-SHA256), looked up in the
    request's own unit of work (not a transaction of its own)."""
    return _identify(request, session, body, None)[0]


def _identify(
    request: Request, session: Session, body: bytes | None, project_id: str | None
) -> tuple[Principal, ProjectScope | None]:
    """The caller and, for a signed request, the project `project_id` when it is the caller's
    (read with the access key); None when it is not, or was not looked up."""
    token = request.headers.get("x-auth-token")
    if token:
        return _from_token(session, token), None
    if not request.headers.get("authorization", "").startswith(signing.ALGORITHM + " "):
        raise Unauthenticated(reason="no signature or token")
    return _verify(get_runtime(request), session, request, body, project_id)


def authenticate(request: Request, session: SessionDep, body: SignedBodyDep) -> Principal:
    """The caller, for routes outside a project (IAM's own)."""
    return caller(request, session, body)


PrincipalDep = Annotated[Principal, OnEndpointThread(authenticate)]


def project_actor(
    project_id: str, request: Request, session: SessionDep, body: SignedBodyDep
) -> Actor:
    """The caller acting in the path's project, which must belong to its domain (S14)."""
    principal, project = _identify(request, session, body, project_id)
    header_project = request.headers.get("x-project-id")
    if header_project and header_project != project_id:
        raise ProjectNotFound(project_id=project_id)
    if principal.token_project_id and principal.token_project_id != project_id:
        raise ProjectNotFound(project_id=project_id)
    if project is None:  # a token, or not the caller's project (which this raises for)
        found = service.visible_project(session, principal.domain_id, project_id)
        project = ProjectScope(found.id, found.region)
    return Actor(principal.domain_id, principal.user_id, project.id, project.region)


ActorDep = Annotated[Actor, OnEndpointThread(project_actor)]
