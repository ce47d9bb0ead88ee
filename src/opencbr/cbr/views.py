"""Wire representations of CBR objects, as reference §2 gives them (times without zone)."""

from __future__ import annotations

from typing import Any

from opencbr.core.clock import api_time

from .models import (
    Backup,
    BackupRecord,
    Checkpoint,
    Member,
    OperationLog,
    Policy,
    Vault,
    VaultResource,
)
from .resources import PROVIDER_IDS

__all__ = [
    "backup_view",
    "checkpoint_view",
    "member_view",
    "oplog_view",
    "policy_view",
    "vault_view",
]

MiB = 1024 * 1024
SPEC_CODES = {"server": "vault.backup.server.normal", "disk": "vault.backup.volume.normal"}


def resource_view(
    resource: VaultResource, size_gb: int, backup_count: int, backup_size_mb: int
) -> dict[str, Any]:
    return {
        "id": resource.resource_id,
        "name": resource.name,
        "type": resource.resource_type,
        "protect_status": "available",
        "size": size_gb,
        "backup_size": backup_size_mb,
        "backup_count": backup_count,
        "auto_protect": resource.auto_protect,
        "extra_info": resource.extra_info or {},
    }


def vault_view(vault: Vault, resources: list[dict[str, Any]]) -> dict[str, Any]:
    allocated = sum(int(r["size"]) for r in resources)
    return {
        "id": vault.id,
        "name": vault.name,
        "description": vault.description,
        "project_id": vault.project_id,
        "provider_id": PROVIDER_IDS[vault.object_type],
        "user_id": vault.user_id,
        "created_at": api_time(vault.created_at),
        "enterprise_project_id": vault.enterprise_project_id,
        "auto_bind": vault.auto_bind,
        "bind_rules": {"tags": [], **(vault.bind_rules or {})},
        "auto_expand": vault.auto_expand,
        "smn_notify": vault.smn_notify,
        "threshold": vault.threshold,
        "tags": vault.tags or [],
        "locked": vault.locked,
        "availability_zone": None,
        "resources": resources,
        # Fields real answers carry that the SDK's models lack. with the vendor's
        # values for a pay-per-use vault in one region of one account.
        "backup_name_prefix": "",
        "cbc_delete_count": 0,
        "cross_account": False,
        "cross_account_urn": None,
        "demand_billing": True,
        "frozen": vault.status == "frozen",
        "supplier": None,
        "sys_lock_source_service": None,
        "billing": {
            "allocated": allocated,
            "size": vault.size_gb,
            "used": round(vault.used_bytes / MiB, 2),
            "status": vault.status,
            "charging_mode": vault.charging_mode,
            "cloud_type": "public",
            "consistent_level": vault.consistent_level,
            "object_type": vault.object_type,
            "protect_type": vault.protect_type,
            "spec_code": SPEC_CODES[vault.object_type],
            "order_id": None,
            "product_id": None,
            "storage_unit": None,
            "frozen_scene": None,
            "is_multi_az": False,
            "is_double_az": False,
            "partner_bp_id": None,
        },
        "policy_id": vault.policy_id,
    }


def backup_view(
    backup: BackupRecord,
    children: list[BackupRecord] | None = None,
    *,
    viewer_project_id: str | None = None,
    member_status: str | None = None,
    vault_id: str | None = None,
) -> dict[str, Any]:
    """A backup as `viewer_project_id` sees it: a recipient sees its member status and the vault
    it accepted the backup into; the owner's `project_id` stays (reference §6.5). A server
    backup's children (its disks' backups) are seen the same way as the backup itself."""
    shared_view = viewer_project_id is not None and viewer_project_id != backup.project_id
    view: dict[str, Any] = {
        "id": backup.id,
        "name": backup.name,
        "description": backup.description,
        "checkpoint_id": backup.checkpoint_id,
        "vault_id": (vault_id if shared_view else backup.vault_id),
        "project_id": backup.project_id,
        "provider_id": PROVIDER_IDS[
            "server" if backup.resource_type == "OS::Nova::Server" else "disk"
        ],
        "parent_id": backup.parent_id,
        "status": backup.status,
        "image_type": "backup",
        "resource_id": backup.resource_id,
        "resource_name": backup.resource_name,
        "resource_az": backup.resource_az,
        "resource_size": backup.resource_size_gb,
        "resource_type": backup.resource_type,
        "created_at": api_time(backup.created_at),
        "updated_at": api_time(backup.updated_at),
        "expired_at": api_time(backup.expired_at),
        "protected_at": api_time(backup.protected_at),
        "extend_info": {
            "auto_trigger": backup.auto_trigger,
            "bootable": backup.bootable,
            "encrypted": backup.encrypted,
            "snapshot_id": None,
            "support_lld": False,
            "supported_restore_mode": "backup",
            "os_images_data": [],
            "contain_system_disk": backup.bootable,
            "system_disk": backup.bootable,
            "is_multi_az": False,
            # Fields real answers carry that the SDK's models lack.
            "progress": 100 if backup.status == "available" else 0,
            "architecture": "x86_64",
            "encrypted_algorithm": "AES256-GCM" if backup.encrypted else None,
            "is_dec": False,
            "app_consistency": {
                "app_consistency": "0",  # crash-consistent: no agent quiesces applications
                "app_consistency_status": "0",
                "app_consistency_error_code": "",
                "app_consistency_error_message": "",
            },
        },
        "scheduled_operation_id": None,
        "children": [
            backup_view(
                child,
                viewer_project_id=viewer_project_id,
                member_status=member_status,
                vault_id=vault_id,
            )
            for child in (children or [])
        ],
        "replication_records": [],
        "enterprise_project_id": "0",
        "incremental": backup.incremental,
        "version": 3,
        "size": round(backup.size_bytes / MiB, 2),
        "stored_size": round(backup.stored_bytes / MiB, 2),
        "kms_key_id": backup.kms_key_id or None,
    }
    if shared_view and member_status is not None:
        view["member_status"] = member_status
        view["shared"] = True
    return view


def checkpoint_view(checkpoint: Checkpoint, vault: Vault, backups: list[Backup]) -> dict[str, Any]:
    resources: list[dict[str, Any]] = [
        {
            "id": b.resource_id,
            "name": b.resource_name,
            "type": b.resource_type,
            "protect_status": "protecting" if b.status == "protecting" else "available",
            "resource_size": str(b.resource_size_gb),
            "backup_size": str(round(b.stored_bytes / MiB)),
            "backup_count": "1",
            "extra_info": {},
        }
        for b in backups
    ]
    status = checkpoint.status
    if backups and all(b.status == "available" for b in backups):
        status = "available"
    elif backups and any(b.status == "error" for b in backups):
        status = "error"
    return {
        "id": checkpoint.id,
        "project_id": checkpoint.project_id,
        "created_at": api_time(checkpoint.created_at),
        "status": status,
        "extra_info": {
            "name": checkpoint.name,
            "description": checkpoint.description,
            "retention_duration": checkpoint.retention_days,
        },
        "vault": {
            "id": vault.id,
            "name": vault.name,
            "resources": resources,
            "skipped_resources": checkpoint.skipped or [],
        },
    }


def member_view(member: Member) -> dict[str, Any]:
    return {
        "id": member.id,
        "backup_id": member.backup_id,
        "dest_project_id": member.dest_project_id,
        "status": member.status,
        "vault_id": member.vault_id,
        "image_id": member.image_id,
        "created_at": api_time(member.created_at),
        "updated_at": api_time(member.updated_at),
    }


def oplog_view(log: OperationLog) -> dict[str, Any]:
    extra = dict(log.extra_info or {})
    common = extra.setdefault("common", {})
    common.setdefault("progress", 100 if log.status != "running" else 0)
    common.setdefault("task_id", log.job_id)
    common.setdefault("request_id", "")
    extra["resource"] = {
        "id": log.resource_id,
        "type": log.resource_type,
        "name": log.resource_name,
    }
    return {
        "id": log.id,
        "project_id": log.project_id,
        "provider_id": log.provider_id,
        "checkpoint_id": log.checkpoint_id,
        "policy_id": log.policy_id,
        "vault_id": log.vault_id,
        "vault_name": log.vault_name,
        "operation_type": log.operation_type,
        "status": log.status,
        "created_at": api_time(log.created_at),
        "started_at": api_time(log.started_at),
        "ended_at": api_time(log.ended_at),
        "updated_at": api_time(log.updated_at),
        "error_info": {"code": log.error_code, "message": log.error_message},
        "extra_info": extra,
    }


def policy_view(policy: Policy, vault_ids: list[str]) -> dict[str, Any]:
    return {
        "id": policy.id,
        "name": policy.name,
        "enabled": policy.enabled,
        "operation_type": policy.operation_type,
        "operation_definition": policy.operation_definition,
        "trigger": {
            "id": policy.trigger_id,
            "name": f"trigger-{policy.trigger_id[:8]}",
            "type": "time",
            "properties": {
                "pattern": policy.patterns,
                "start_time": policy.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                "start_window_minutes": policy.start_window_minutes,
            },
        },
        "associated_vaults": [{"vault_id": v, "destination_vault_id": None} for v in vault_ids],
        "policy_type": "backup",
    }
