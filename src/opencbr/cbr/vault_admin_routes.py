"""CBR routes acting on many vaults, backups or resources at once (rules in `vault_admin`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from opencbr.core.routing import JSONRoute
from opencbr.core.web import SessionDep
from opencbr.iam.auth import ActorDep

from . import vault_admin
from .responses_more import ExpirationChanged, MigratedResources, SetResources, UpdatedVaults

__all__ = ["router"]

router = APIRouter(
    prefix="/v3/{project_id}", tags=["cbr", "cbr-vault-admin"], route_class=JSONRoute
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class BatchVaultIn(_Body):
    smn_notify: bool | None = None
    threshold: int | None = None


class BatchUpdateBody(_Body):
    vault: BatchVaultIn


class ExpirationBody(_Body):
    expect_expiration_date: str = Field(max_length=10)
    time_zone: str = Field(default="UTC+00:00", max_length=9)


class SetResourcesBody(_Body):
    resource_ids: list[str] = Field(min_length=1, max_length=256)
    action: str = Field(max_length=16)


class MigrateBody(_Body):
    destination_vault_id: str = Field(max_length=64)
    resource_ids: list[str] = Field(min_length=1, max_length=256)


@router.put("/vaults/batch-update", operation_id="BatchUpdateVault", response_model=UpdatedVaults)
def batch_update_vault(
    body: BatchUpdateBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    ids = vault_admin.batch_update(
        session, actor, smn_notify=body.vault.smn_notify, threshold=body.vault.threshold
    )
    return {"updated_vaults_id": ids}


@router.put(
    "/vaults/{vault_id}/update-backup-expiration-time",
    operation_id="UpdateExpirationTime",
    response_model=ExpirationChanged,
)
def update_expiration_time(
    vault_id: str, body: ExpirationBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    change = vault_admin.update_expiration(
        session, actor, vault_id, body.expect_expiration_date, body.time_zone
    )
    return {
        "affected_backups_count": change.count,
        "new_expiration_day": change.day,
        "operation_log_id": change.oplog_id,
    }


@router.put(
    "/vaults/{vault_id}/set-resources", operation_id="SetVaultResource", response_model=SetResources
)
def set_vault_resource(
    vault_id: str, body: SetResourcesBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    ids = vault_admin.set_suspended(session, actor, vault_id, body.resource_ids, body.action)
    return {"set_resource_ids": ids}


@router.post(
    "/vaults/{vault_id}/migrateresources",
    operation_id="MigrateVaultResource",
    response_model=MigratedResources,
)
def migrate_vault_resource(
    vault_id: str, body: MigrateBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    moved = vault_admin.migrate_resources(
        session, actor, vault_id, body.destination_vault_id, body.resource_ids
    )
    return {"migrated_resources": moved}
