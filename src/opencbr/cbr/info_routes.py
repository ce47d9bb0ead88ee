"""CBR routes that report rather than act: storage usage, features, replication
capabilities, external vaults, backup metadata, and the account's projects as CBR lists
them. Answers come from `project_info` and the IAM service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from opencbr.core.routing import JSONRoute
from opencbr.core.web import SessionDep
from opencbr.iam import service as iam
from opencbr.iam.auth import ActorDep, PrincipalDep
from opencbr.iam.errors import DomainNotFound
from opencbr.iam.responses import ProjectList
from opencbr.iam.routes import project_view

from . import project_info
from .responses_more import (
    DomainInfo,
    DomainProjects,
    ExternalVaults,
    Features,
    Metadata,
    ReplicationCapabilities,
    StorageUsage,
)

__all__ = ["account_router", "router"]

router = APIRouter(prefix="/v3/{project_id}", tags=["cbr", "cbr-info"], route_class=JSONRoute)
account_router = APIRouter(prefix="/v3", tags=["cbr", "cbr-info"], route_class=JSONRoute)
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]


@router.get("/storage_usage", operation_id="ShowStorageUsage", response_model=StorageUsage)
def show_storage_usage(
    actor: ActorDep,
    session: SessionDep,
    resource_id: Annotated[str | None, Query(max_length=64)] = None,
    resource_type: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> dict[str, Any]:
    found, total = project_info.storage_usage(
        session,
        actor,
        resource_id=resource_id,
        resource_type=resource_type,
        limit=limit,
        offset=offset,
    )
    usage = [
        {
            "resource_id": u.resource_id,
            "resource_name": u.resource_name,
            "resource_type": u.resource_type,
            "backup_count": u.backup_count,
            "backup_size": u.backup_size_mb,
            "backup_size_multiaz": 0,
        }
        for u in found
    ]
    return {"resource_count": total, "storage_usage": usage}


@router.get("/cbr-features", operation_id="ListFeatures", response_model=Features)
def list_features(actor: ActorDep) -> dict[str, Any]:
    return dict(project_info.FEATURES)


@router.get("/cbr-features/{feature_key}", operation_id="ShowFeature", response_model=Features)
def show_feature(feature_key: str, actor: ActorDep) -> dict[str, Any]:
    return {feature_key: project_info.feature(feature_key)}


@router.get(
    "/replication-capabilities",
    operation_id="ShowReplicationCapabilities",
    response_model=ReplicationCapabilities,
)
def show_replication_capabilities(actor: ActorDep) -> dict[str, Any]:
    return {"regions": project_info.replication_destinations(actor)}


@router.get("/vaults/external", operation_id="ListExternalVault", response_model=ExternalVaults)
def list_external_vault(actor: ActorDep, limit: Limit = 1000, offset: Offset = 0) -> dict[str, Any]:
    """Vaults of other regions this project could replicate into: none until replication."""
    return {"vaults": [], "count": 0, "limit": limit, "offset": offset}


@router.get("/backups/{backup_id}/metadata", operation_id="ShowMetadata", response_model=Metadata)
def show_metadata(backup_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    return project_info.backup_metadata(session, actor, backup_id)


@account_router.get("/region-projects", operation_id="ListProjects", response_model=ProjectList)
def list_region_projects(
    request: Request, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    """The caller's projects in every region (where its backups could go)."""
    projects = iam.list_projects(session, principal.domain_id)
    return {
        "projects": [project_view(request, p) for p in projects],
        "links": {"self": str(request.url)},
    }


@account_router.get(
    "/domain/{domain_name}/projects",
    operation_id="ListDomainProjects",
    response_model=DomainProjects,
)
def list_domain_projects(
    domain_name: str, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    """The projects of the caller's own account, named; another account is not found (S14)."""
    domain = iam.get_domain(session, principal.domain_id)
    if domain.name != domain_name:
        raise DomainNotFound(id=domain_name)
    projects = iam.list_projects(session, domain.id)
    return {"projects": [{"project_id": p.id, "project_name": p.name} for p in projects]}


@account_router.get(
    "/domain/{source_project_id}", operation_id="ShowDomain", response_model=DomainInfo
)
def show_domain(
    source_project_id: str, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    """The account of one of the caller's projects; another's answers like a missing one."""
    project = iam.visible_project(session, principal.domain_id, source_project_id)
    domain = iam.get_domain(session, project.domain_id)
    return {
        "project_id": project.id,
        "project_name": project.name,
        "domain_id": domain.id,
        "domain_name": domain.name,
    }
