"""IAM (Keystone v3 subset) routes the vendor SDK and the CLI call."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from opencbr.core.clock import api_time
from opencbr.core.context import Runtime
from opencbr.core.errors import error_body
from opencbr.core.ids import new_uuid
from opencbr.core.routing import JSONRoute
from opencbr.core.web import RuntimeDep, SessionDep

from . import agencies, service, throttle
from .auth import PrincipalDep
from .errors import DomainNotFound, IamValidationFailed, LoginThrottled
from .models import Agency, Domain, Project
from .responses import (
    AgencyList,
    AgencyOne,
    DomainList,
    ProjectList,
    ProjectOne,
    TokenAnswer,
    WhoAmI,
)

__all__ = ["VALIDATION_ERRORS", "domain_view", "project_view", "router", "routers", "throttled"]

# Bad input to these paths answers in IAM's family (`IAM.0011`), not the backup service's.
VALIDATION_ERRORS: dict[str, type] = {
    "/v3/auth/": IamValidationFailed,
    "/v3/projects": IamValidationFailed,
    "/v3.0/OS-AGENCY/": IamValidationFailed,
}
router = APIRouter(tags=["iam"], route_class=JSONRoute)


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class _DomainRef(_Loose):
    name: str | None = None
    id: str | None = None


class _UserRef(_Loose):
    name: str
    password: str
    domain: _DomainRef | None = None


class _PasswordMethod(_Loose):
    user: _UserRef


class _Identity(_Loose):
    methods: list[str]
    password: _PasswordMethod


class _ProjectRef(_Loose):
    id: str | None = None


class _Scope(_Loose):
    project: _ProjectRef | None = None


class _Auth(_Loose):
    identity: _Identity
    scope: _Scope | None = None


class TokenRequest(BaseModel):
    auth: _Auth


def project_view(request: Request, project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "domain_id": project.domain_id,
        "parent_id": project.domain_id,
        "enabled": project.enabled,
        "is_domain": False,
        "description": project.description,
        "region": project.region,
        "links": {"self": str(request.url_for("show_project", project_id=project.id))},
    }


def domain_view(domain: Domain) -> dict[str, Any]:
    return {
        "id": domain.id,
        "name": domain.name,
        "enabled": domain.enabled,
        "description": "",
        "links": {},
    }


@router.post(
    "/v3/auth/tokens",
    status_code=201,
    operation_id="KeystoneCreateUserTokenByPassword",
    openapi_extra={"security": []},  # a user name and password,
    response_model=TokenAnswer,
)
async def create_token(
    body: TokenRequest, request: Request, response: Response, runtime: RuntimeDep
) -> Any:
    """Runs on the event loop: the sign-in waits for a check slot of `iam.throttle` without
    holding a request thread, and its units of work are its own."""
    user = body.auth.identity.password.user
    scope_project = (
        body.auth.scope.project.id if body.auth.scope and body.auth.scope.project else None
    )
    asked = throttle.LoginRequest(
        user.name,
        user.password,
        timedelta(seconds=runtime.settings.token_ttl_seconds),
        project_id=scope_project,
        domain_name=user.domain.name if user.domain else None,
    )
    try:
        return await throttle.gate_of(runtime).run(lambda: _token_answer(runtime, asked, response))
    except LoginThrottled as error:
        return throttled(request, error)


def throttled(request: Request, error: LoginThrottled) -> JSONResponse:
    """The 429 with its `Retry-After`."""
    request_id = str(getattr(request.state, "request_id", "")) or new_uuid()
    return JSONResponse(
        error_body(error, request_id),
        status_code=error.status,
        headers={"Retry-After": str(error.retry_after)},
    )


def _token_answer(
    runtime: Runtime, asked: throttle.LoginRequest, response: Response
) -> dict[str, Any]:
    token, principal, expires = throttle.login(runtime.database, asked)
    response.headers["X-Subject-Token"] = token
    with runtime.database.unit_of_work() as session:
        domain = service.get_domain(session, principal.domain_id)
        payload: dict[str, Any] = {
            "expires_at": api_time(expires),
            "methods": ["password"],
            "user": {
                "id": principal.user_id,
                "name": principal.user_name,
                "domain": domain_view(domain),
            },
            "catalog": [],
        }
        if asked.project_id:
            project = service.visible_project(session, principal.domain_id, asked.project_id)
            payload["project"] = {
                "id": project.id,
                "name": project.name,
                "domain": domain_view(domain),
            }
    return {"token": payload}


@router.get("/v3/projects", operation_id="KeystoneListProjects", response_model=ProjectList)
def list_projects(
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    name: str | None = None,
    domain_id: str | None = None,
) -> dict[str, Any]:
    projects = service.list_projects(session, principal.domain_id, name=name)
    if domain_id is not None and domain_id != principal.domain_id:
        projects = []
    return {
        "projects": [project_view(request, p) for p in projects],
        "links": {"self": str(request.url)},
    }


@router.get(
    "/v3/auth/projects", operation_id="KeystoneListAuthProjects", response_model=ProjectList
)
def list_auth_projects(
    request: Request, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    projects = service.list_projects(session, principal.domain_id)
    return {
        "projects": [project_view(request, p) for p in projects],
        "links": {"self": str(request.url)},
    }


@router.get("/v3/auth/domains", operation_id="KeystoneListAuthDomains", response_model=DomainList)
def list_auth_domains(
    request: Request, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    domain = service.get_domain(session, principal.domain_id)
    return {"domains": [domain_view(domain)], "links": {"self": str(request.url)}}


@router.get(
    "/v3/projects/{project_id}",
    operation_id="KeystoneShowProject",
    name="show_project",
    response_model=ProjectOne,
)
def show_project(
    project_id: str, request: Request, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    project = service.visible_project(session, principal.domain_id, project_id)
    return {"project": project_view(request, project)}


@router.get("/opencbr/v1/whoami", operation_id="OpencbrWhoAmI", response_model=WhoAmI)
def whoami(principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    """The caller's Account ID, user and project per region (S11)."""
    domain = service.get_domain(session, principal.domain_id)
    projects = service.list_projects(session, principal.domain_id)
    return {
        "domain_id": domain.id,
        "domain_name": domain.name,
        "user_id": principal.user_id,
        "user_name": principal.user_name,
        "projects": [{"id": p.id, "name": p.name, "region": p.region} for p in projects],
        "agencies": [a.name for a in agencies.list_agencies(session, principal.domain_id)],
    }


class AgencyBody(BaseModel):
    name: str
    domain_id: str
    trust_domain_name: str | None = None
    trust_domain_id: str | None = None
    description: str = ""
    duration: str | None = None


class CreateAgencyRequest(BaseModel):
    agency: AgencyBody


def agency_view(agency: Agency) -> dict[str, Any]:
    return {
        "id": agency.id,
        "name": agency.name,
        "domain_id": agency.domain_id,
        "trust_domain_name": agency.trust_domain_name,
        "trust_domain_id": None,
        "description": agency.description,
        "duration": agency.duration,
        "expire_time": None,
        "create_time": api_time(agency.created_at),
    }


@router.post(
    "/v3.0/OS-AGENCY/agencies",
    status_code=201,
    operation_id="CreateAgency",
    response_model=AgencyOne,
)
def create_agency(
    body: CreateAgencyRequest, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    if body.agency.domain_id != principal.domain_id:
        raise DomainNotFound(id=body.agency.domain_id)
    agency = agencies.create_agency(
        session,
        principal.domain_id,
        body.agency.name,
        body.agency.trust_domain_name or "",
        body.agency.description,
    )
    return {"agency": agency_view(agency)}


@router.get("/v3.0/OS-AGENCY/agencies", operation_id="ListAgencies", response_model=AgencyList)
def list_agencies(
    principal: PrincipalDep,
    session: SessionDep,
    domain_id: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    if domain_id is not None and domain_id != principal.domain_id:
        return {"agencies": []}
    return {
        "agencies": [
            agency_view(a) for a in agencies.list_agencies(session, principal.domain_id, name)
        ]
    }


@router.delete("/v3.0/OS-AGENCY/agencies/{agency_id}", status_code=204, operation_id="DeleteAgency")
def delete_agency(agency_id: str, principal: PrincipalDep, session: SessionDep) -> Response:
    agencies.delete_agency(session, principal.domain_id, agency_id)
    return Response(status_code=204)


routers = (router,)
"""Every router of the slice, for the app to add route by route."""
