"""The operator's store API: start a scrub, read the last one's result.

Not a tenant's API: it answers only a bearer token equal to `Settings.admin_token`, and does
not exist (404, as any unknown path) while that setting is unset. A scrub runs as a job
(`cbr.scrub`), so a request never waits for the store to be read; its result is the
operator's operation log (project "") of type `scrub`, as for the CLI's and the scheduler's.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from opencbr.core.errors import NotFound, Unauthenticated
from opencbr.core.routing import JSONRoute
from opencbr.core.web import RuntimeDep, SessionDep

from . import scrub
from .jobs.payloads import ScrubPayload
from .responses_more import ScrubLatest, ScrubStarted

__all__ = ["SCRUB_JOB", "router"]

SCRUB_JOB = ScrubPayload.kind


def operator(request: Request, runtime: RuntimeDep) -> None:
    """The caller holds the admin token; else the API does not exist (no token set) or 401."""
    expected = runtime.settings.admin_token
    if not expected:
        raise NotFound(f"The API does not exist: {request.method} {request.url.path}.")
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthenticated(reason="the admin token is missing or wrong")


OperatorDep = Annotated[None, Depends(operator)]

router = APIRouter(prefix="/v1/admin/store", tags=["admin"], route_class=JSONRoute)
OPERATOR_ONLY: dict[str, Any] = {"security": [{"OperatorToken": []}]}


@router.post(
    "/scrubs",
    operation_id="StartStoreScrub",
    status_code=202,
    openapi_extra=OPERATOR_ONLY,
    response_model=ScrubStarted,
)
def start_scrub(_: OperatorDep, session: SessionDep, deep: bool = False) -> dict[str, Any]:
    job = scrub.start_scrub(session, deep)
    return {"job_id": job.id, "deep": deep}


@router.get(
    "/scrubs/latest",
    operation_id="ShowLatestStoreScrub",
    openapi_extra=OPERATOR_ONLY,
    response_model=ScrubLatest,
)
def latest_scrub(_: OperatorDep, session: SessionDep) -> dict[str, Any]:
    log = scrub.latest_scrub(session)
    if log is None:
        raise NotFound("No scrub has run yet.")
    return {"scrub": log.extra_info.get("scrub", {}), "at": log.created_at.isoformat()}
