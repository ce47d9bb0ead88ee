"""A vault as the API shows it, with each resource's size and backups looked up."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import vaults
from .models import Backup, BackupStatus, Vault
from .resources import describe_resource
from .views import resource_view, vault_view

__all__ = ["vault_out"]


def vault_out(session: Session, vault: Vault) -> dict[str, Any]:
    resources = []
    for held in vaults.vault_resources(session, vault.id):
        try:
            size = describe_resource(
                session, vault.project_id, held.resource_id, held.resource_type
            ).size_gb
        except Exception:  # a resource deleted meanwhile still shows, with size 0
            size = 0
        count, stored = session.execute(
            select(func.count(), func.coalesce(func.sum(Backup.stored_bytes), 0)).where(
                Backup.vault_id == vault.id,
                Backup.resource_id == held.resource_id,
                Backup.parent_id.is_(None),
                Backup.status == BackupStatus.AVAILABLE,
            )
        ).one()
        # Rounded up: a backup smaller than 1 MB still holds data, and 0 would say it holds none.
        stored_mb = -(-int(stored) // 2**20)
        resources.append(resource_view(held, size, int(count), stored_mb))
    return vault_view(vault, resources)
