"""CBR v3 routes: vaults, checkpoints, backups and operation logs (sharing: `share_routes`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from opencbr.core.errors import ValidationFailed
from opencbr.core.idempotency import idempotent
from opencbr.core.routing import JSONRoute
from opencbr.core.web import RuntimeDep, SessionDep, json_response
from opencbr.evs import service as evs
from opencbr.iam.auth import ActorDep

from . import backups, checkpoints, deletion, nbd_restore, oplogs, restore, vaults
from .admin_routes import router as admin_router
from .errors import CLIENT_TOKEN_ERRORS
from .external_reads import external_read_views
from .file_routes import router as file_router
from .info_routes import account_router
from .info_routes import router as info_router
from .models import Backup, BackupRecord, ResourceType
from .policy_routes import router as policy_router
from .protectable_routes import router as protectable_router
from .responses import (
    BackupList,
    BackupOne,
    CheckpointOne,
    OpLogList,
    OpLogOne,
    VaultList,
    VaultOne,
)
from .responses_more import AddedResources, RemovedResources, ServerFromBackup, Summary
from .schemas import (
    AddResourcesBody,
    CheckpointBody,
    RemoveResourcesBody,
    RestoreBody,
    ServerFromBackupBody,
    UpdateBackupBody,
    UpdateVaultBody,
    VaultCreateBody,
)
from .share_routes import router as share_router
from .tag_routes import router as tag_router
from .vault_admin_routes import router as vault_admin_router
from .vault_views import vault_out as _vault_out
from .views import backup_view, checkpoint_view, oplog_view

__all__ = ["VALIDATION_ERRORS", "router", "routers"]

VALIDATION_ERRORS: dict[str, type] = {}
router = APIRouter(prefix="/v3/{project_id}", tags=["cbr"], route_class=JSONRoute)
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise ValidationFailed(reason=f"time {value!r} must look like 2020-02-05T10:38:34Z")


@router.post("/vaults", operation_id="CreateVault", response_model=VaultOne)
@idempotent(CLIENT_TOKEN_ERRORS)
def create_vault(body: VaultCreateBody, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    spec_in = body.vault
    spec = vaults.VaultSpec(
        name=spec_in.name,
        object_type=spec_in.billing.object_type,
        size_gb=spec_in.billing.size,
        protect_type=spec_in.billing.protect_type,
        consistent_level=spec_in.billing.consistent_level,
        charging_mode=spec_in.billing.charging_mode,
        description=spec_in.description,
        resources=[
            vaults.ResourceSpec(r.id, r.type, r.name, r.extra_info or {}) for r in spec_in.resources
        ],
        auto_bind=spec_in.auto_bind,
        bind_rules=spec_in.bind_rules or {},
        auto_expand=spec_in.auto_expand,
        tags=spec_in.tags,
        policy_id=spec_in.backup_policy_id,
        enterprise_project_id=spec_in.enterprise_project_id,
    )
    vault = vaults.create_vault(session, actor, spec)
    return {"vault": _vault_out(session, vault)}


@router.get("/vaults/summary", operation_id="ShowSummary", response_model=Summary)
def show_summary(actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    found, _ = vaults.list_vaults(session, actor, vaults.VaultFilters(limit=100000))
    return {
        "size": sum(v.size_gb for v in found),
        "used_size": round(sum(v.used_bytes for v in found) / 2**30, 3),
    }


@router.get("/vaults", operation_id="ListVault", response_model=VaultList)
def list_vaults(
    actor: ActorDep,
    session: SessionDep,
    limit: Limit = 1000,
    offset: Offset = 0,
    name: str | None = None,
    object_type: str | None = None,
    protect_type: str | None = None,
    status: str | None = None,
    policy_id: str | None = None,
    id: Annotated[list[str] | None, Query()] = None,
    resource_ids: str | None = None,
    cloud_type: str | None = None,
    enterprise_project_id: str | None = None,
) -> dict[str, Any]:
    filters = vaults.VaultFilters(
        name=name,
        object_type=object_type,
        protect_type=protect_type,
        status=status,
        ids=id or (),
        policy_id=policy_id,
        resource_ids=[r for r in (resource_ids or "").split(",") if r],
        limit=limit,
        offset=offset,
    )
    found, count = vaults.list_vaults(session, actor, filters)
    return {
        "vaults": [_vault_out(session, v) for v in found],
        "count": count,
        "limit": limit,
        "offset": offset,
    }


@router.get("/vaults/{vault_id}", operation_id="ShowVault", response_model=VaultOne)
def show_vault(vault_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    return {"vault": _vault_out(session, vaults.get_vault(session, actor, vault_id))}


@router.put("/vaults/{vault_id}", operation_id="UpdateVault", response_model=VaultOne)
def update_vault(
    vault_id: str, body: UpdateVaultBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    changes = body.vault
    update = vaults.VaultUpdate(
        name=changes.name,
        size_gb=changes.billing.size if changes.billing else None,
        auto_bind=changes.auto_bind,
        bind_rules=changes.bind_rules,
        auto_expand=changes.auto_expand,
        smn_notify=changes.smn_notify,
        threshold=changes.threshold,
        locked=changes.locked,
    )
    return {"vault": _vault_out(session, vaults.update_vault(session, actor, vault_id, update))}


@router.delete("/vaults/{vault_id}", status_code=204, operation_id="DeleteVault")
def delete_vault(vault_id: str, actor: ActorDep, session: SessionDep) -> Response:
    vaults.delete_vault(session, actor, vault_id)
    return Response(status_code=204)


@router.post(
    "/vaults/{vault_id}/addresources",
    operation_id="AddVaultResource",
    response_model=AddedResources,
)
def add_resources(
    vault_id: str, body: AddResourcesBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    specs = [vaults.ResourceSpec(r.id, r.type, r.name, r.extra_info or {}) for r in body.resources]
    return {"add_resource_ids": vaults.add_resources(session, actor, vault_id, specs)}


@router.post(
    "/vaults/{vault_id}/removeresources",
    operation_id="RemoveVaultResource",
    response_model=RemovedResources,
)
def remove_resources(
    vault_id: str, body: RemoveResourcesBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    return {
        "remove_resource_ids": vaults.remove_resources(session, actor, vault_id, body.resource_ids)
    }


@router.post("/checkpoints", operation_id="CreateCheckpoint", response_model=CheckpointOne)
@idempotent(CLIENT_TOKEN_ERRORS)
def create_checkpoint(body: CheckpointBody, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    params = body.checkpoint.parameters
    resources = None
    if params is not None:
        resources = params.resources
        if params.resource_details:
            resources = [str(d.get("id")) for d in params.resource_details]
    spec = backups.CheckpointSpec(
        vault_id=body.checkpoint.vault_id,
        name=params.name if params else None,
        description=params.description if params else "",
        incremental=params.incremental if params else True,
        resources=resources,
        auto_trigger=params.auto_trigger if params else False,
        policy_id=params.policy_id if params else None,
        retention_days=params.retention_duration_days if params else -1,
    )
    checkpoint = backups.create_checkpoint(session, actor, spec)
    return {"checkpoint": _checkpoint_out(session, actor, checkpoint.id)}


def _checkpoint_out(session: Session, actor: Any, checkpoint_id: str) -> dict[str, Any]:
    return checkpoint_view(*checkpoints.show_checkpoint(session, actor, checkpoint_id))


@router.get(
    "/checkpoints/{checkpoint_id}", operation_id="ShowCheckpoint", response_model=CheckpointOne
)
def show_checkpoint(checkpoint_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    return {"checkpoint": _checkpoint_out(session, actor, checkpoint_id)}


def _backups_out(
    session: Session,
    actor: Any,
    found: Sequence[BackupRecord],
    shares: dict[str, backups.Membership] | None = None,
) -> list[dict[str, Any]]:
    """Backups as the caller sees them, with its shares of them (unless they are given) and
    their children (server backups only have any) loaded in at most two queries for the whole
    page rather than two per backup."""
    if shares is None:
        shared = [b.id for b in found if b.project_id != actor.project_id]
        shares = backups.memberships(session, actor.project_id, shared)
    servers = [b.id for b in found if b.resource_type == ResourceType.SERVER]
    children = backups.children_by_parent(session, servers)
    views = []
    for backup in found:
        share = shares.get(backup.id)
        views.append(
            backup_view(
                backup,
                children.get(backup.id, []),
                viewer_project_id=actor.project_id,
                member_status=share.status if share else None,
                vault_id=share.vault_id if share else None,
            )
        )
    return views


def _backup_out(session: Session, actor: Any, backup: Backup) -> dict[str, Any]:
    return _backups_out(session, actor, [backup])[0]


@router.get("/backups", operation_id="ListBackups", response_model=BackupList)
def list_backups(
    actor: ActorDep,
    session: SessionDep,
    limit: Limit = 1000,
    offset: Offset = 0,
    vault_id: str | None = None,
    checkpoint_id: str | None = None,
    resource_id: str | None = None,
    resource_name: str | None = None,
    resource_az: str | None = None,
    resource_type: str | None = None,
    name: str | None = None,
    parent_id: str | None = None,
    status: str | None = None,
    image_type: str | None = None,
    own_type: str = "private",
    member_status: str | None = None,
    start_time: str | None = None,
    end_time: str | None = None,
    sort: Annotated[str | None, Query(max_length=255)] = None,
    enterprise_project_id: str | None = None,
    show_replication: bool | None = None,
    incremental: bool | None = None,
    dec: bool | None = None,
    marker: str | None = None,
    used_percent: str | None = None,
) -> JSONResponse:
    filters = backups.BackupFilters(
        vault_id=vault_id,
        checkpoint_id=checkpoint_id,
        resource_id=resource_id,
        resource_name=resource_name,
        resource_az=resource_az,
        resource_type=resource_type,
        name=name,
        parent_id=parent_id,
        status=status,
        image_type=image_type,
        own_type=own_type,
        member_status=member_status,
        start_time=_parse_time(start_time),
        end_time=_parse_time(end_time),
        incremental=incremental,
        sort=sort,
        limit=limit,
        offset=offset,
        marker=marker,
    )
    page = backups.list_backups(session, actor, filters)
    return json_response(
        {
            "backups": _backups_out(session, actor, page.backups, page.memberships),
            "count": page.count,
            "limit": limit,
            "offset": offset,
        }
    )


@router.get("/backups/{backup_id}", operation_id="ShowBackup", response_model=BackupOne)
def show_backup(backup_id: str, actor: ActorDep, session: SessionDep) -> JSONResponse:
    backup, share = backups.visible_backup_record(session, actor, backup_id)
    shares = {backup.id: share} if share is not None else {}
    shown = _backups_out(session, actor, [backup], shares)[0]
    read = external_read_views(session, [backup.id]).get(backup.id)
    if read is not None:
        shown["extend_info"] = {**shown.get("extend_info", {}), "external_source": read}
    return json_response({"backup": shown})


@router.put("/backups/{backup_id}", operation_id="UpdateBackup", response_model=BackupOne)
def update_backup(
    backup_id: str, body: UpdateBackupBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    backup = backups.rename_backup(session, actor, backup_id, body.backup.name)
    return {"backup": _backup_out(session, actor, backup)}


@router.delete("/backups/{backup_id}", status_code=204, operation_id="DeleteBackup")
def delete_backup(backup_id: str, actor: ActorDep, session: SessionDep) -> Response:
    deletion.delete_backup(session, actor, backup_id)
    return Response(status_code=204)


@router.get("/operation-logs", operation_id="ListOpLogs", response_model=OpLogList)
def list_oplogs(
    actor: ActorDep,
    session: SessionDep,
    limit: Limit = 1000,
    offset: Offset = 0,
    operation_type: str | None = None,
    status: str | None = None,
    provider_id: str | None = None,
    resource_id: str | None = None,
    resource_name: str | None = None,
    vault_id: str | None = None,
    vault_name: str | None = None,
    start_time: str | None = None,
    end_time: str | None = None,
    enterprise_project_id: str | None = None,
) -> dict[str, Any]:
    filters = oplogs.OpLogFilters(
        operation_type=operation_type,
        status=status,
        provider_id=provider_id,
        resource_id=resource_id,
        resource_name=resource_name,
        vault_id=vault_id,
        vault_name=vault_name,
        start_time=_parse_time(start_time),
        end_time=_parse_time(end_time),
        limit=limit,
        offset=offset,
    )
    found, count = oplogs.list_oplogs(session, actor, filters)
    return {
        "operation_logs": [oplog_view(log) for log in found],
        "count": count,
        "limit": limit,
        "offset": offset,
    }


@router.get("/operation-logs/{operation_log_id}", operation_id="ShowOpLog", response_model=OpLogOne)
def show_oplog(operation_log_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    return {"operation_log": oplog_view(oplogs.get_oplog(session, actor, operation_log_id))}


@router.post("/backups/{backup_id}/restore", status_code=202, operation_id="RestoreBackup")
@idempotent(CLIENT_TOKEN_ERRORS)
def restore_backup(
    backup_id: str, body: RestoreBody, actor: ActorDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    spec = body.restore
    if spec.nbd_uri is not None:
        nbd_restore.restore_to_nbd(
            session, runtime, actor, backup_id, spec.nbd_uri, spec.tls_psk_file
        )
        return Response(status_code=202)
    targets = [restore.RestoreTarget(m.backup_id, m.volume_id) for m in spec.mappings]
    if spec.volume_id:
        targets.append(restore.RestoreTarget(backup_id, spec.volume_id))
    restore.restore_backup(session, runtime, actor, backup_id, targets, server_id=spec.server_id)
    return Response(status_code=202)


@router.post(
    "/backups/{backup_id}/servers",
    status_code=202,
    operation_id="OpencbrCreateServerFromBackup",
    response_model=ServerFromBackup,
)
@idempotent(CLIENT_TOKEN_ERRORS)
def create_server_from_backup(
    backup_id: str,
    body: ServerFromBackupBody,
    actor: ActorDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """Our extension: a new server from a server backup (one new disk per disk backed up)."""
    server, job = restore.server_from_backup(
        session,
        runtime,
        actor,
        backup_id,
        body.server.name,
        body.server.availability_zone,
        body.server.kms_key_id,
    )
    disks = [d.id for d in evs.server_disks(session, server.id)]
    return {"job_id": job.id, "server_id": server.id, "volume_ids": disks}


routers = (
    router,
    share_router,
    policy_router,
    admin_router,
    tag_router,
    info_router,
    account_router,
    protectable_router,
    vault_admin_router,
    file_router,
)
"""Every router of the slice, for the app to add route by route."""
