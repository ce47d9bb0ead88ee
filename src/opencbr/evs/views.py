"""Wire shapes of disks (EVS `VolumeDetail`), jobs (EVS `ShowJob`) and servers (our own)."""

from __future__ import annotations

from typing import Any

from opencbr.core.clock import api_time
from opencbr.core.jobs import Job, JobStatus

from .models import Disk, Server
from .service import CMK_META, ENCRYPTED_META

__all__ = ["job_view", "server_view", "volume_view"]

JOB_TYPES = {
    "evs.create_disk": "createVolume",
    "evs.delete_disk": "deleteVolume",
    "evs.create_server": "createServer",
    "evs.extend_disk": "extendVolume",
    "evs.create_snapshot": "createSnapshot",
    "evs.rollback_snapshot": "rollbackSnapshot",
    "evs.recycle_disk": "deleteVolume",
}


def volume_view(disk: Disk, base_url: str = "") -> dict[str, Any]:
    metadata: dict[str, Any] = dict(disk.metadata_)
    metadata[ENCRYPTED_META] = "1" if disk.encrypted else "0"
    if disk.encrypted:
        metadata[CMK_META] = disk.kms_key_id
    attachments = []
    if disk.server_id:
        attachments.append(
            {
                "attachment_id": disk.id,
                "attached_at": api_time(disk.updated_at),
                "device": disk.device,
                "host_name": "",
                "id": disk.id,
                "server_id": disk.server_id,
                "volume_id": disk.id,
            }
        )
    href = f"{base_url}/v2/{disk.project_id}/cloudvolumes/{disk.id}"
    return {
        "id": disk.id,
        "name": disk.name,
        "status": disk.status,
        "size": disk.size_gb,
        "availability_zone": disk.availability_zone,
        "volume_type": disk.volume_type,
        "bootable": "true" if disk.bootable else "false",
        "multiattach": disk.multiattach,
        "shareable": "true" if disk.multiattach else "false",
        "encrypted": disk.encrypted,
        "description": disk.description,
        "attachments": attachments,
        "links": [{"href": href, "rel": "self"}],
        "metadata": metadata,
        "volume_image_metadata": {},
        "tags": dict(disk.tags),
        "created_at": api_time(disk.created_at),
        "updated_at": api_time(disk.updated_at),
        "os-vol-tenant-attr:tenant_id": disk.project_id,
        "os-vol-host-attr:host": "opencbr",
        "snapshot_id": None,
        "source_volid": None,
        "backup_id": disk.source_backup_id,
        "service_type": "EVS",
        "user_id": disk.user_id,
        "wwn": "",
        "replication_status": "disabled",
        "enterprise_project_id": "0",
        "error_message": disk.error_message or None,
    }


def _job_status(job: Job) -> str:
    if job.status == JobStatus.SUCCEEDED:
        return "SUCCESS"
    if job.status == JobStatus.FAILED:
        return "FAIL"
    if job.status == JobStatus.QUEUED and job.attempts == 0:
        return "INIT"
    return "RUNNING"


def job_view(job: Job, disk: Disk | None) -> dict[str, Any]:
    """EVS ShowJob. `entities.volume_id` comes from the job's result or payload
    (`volume_id`, `disk_id` or the first of `disk_ids`), whatever slice made the job."""
    entities: dict[str, Any] = {}
    if disk is not None:
        entities = {
            "volume_id": disk.id,
            "name": disk.name,
            "size": disk.size_gb,
            "volume_type": disk.volume_type,
        }
    elif volume_id := job_volume_id(job):
        entities = {"volume_id": volume_id}
    return {
        "status": _job_status(job),
        "job_id": job.id,
        "job_type": JOB_TYPES.get(job.kind, job.kind),
        "progress": job.progress,
        "entities": entities,
        "begin_time": api_time(job.started_at or job.created_at),
        "end_time": api_time(job.finished_at),
        "error_code": job.error_code or None,
        "fail_reason": job.error_message or None,
    }


def job_volume_id(job: Job) -> str | None:
    for source in (job.result or {}, job.payload or {}):
        for name in ("volume_id", "disk_id"):
            if isinstance(source.get(name), str):
                return str(source[name])
        ids = source.get("disk_ids") or source.get("volume_ids")
        if isinstance(ids, list) and ids:
            return str(ids[0])
    return None


def server_view(server: Server, disks: list[Disk]) -> dict[str, Any]:
    return {
        "id": server.id,
        "name": server.name,
        "status": server.status,
        "availability_zone": server.availability_zone,
        "flavor": server.flavor,
        "project_id": server.project_id,
        "source_backup_id": server.source_backup_id,
        "metadata": dict(server.metadata_),
        "created_at": api_time(server.created_at),
        "updated_at": api_time(server.updated_at),
        "volumes_attached": [
            {
                "id": disk.id,
                "name": disk.name,
                "device": disk.device,
                "bootable": disk.bootable,
                "size": disk.size_gb,
                "status": disk.status,
                "encrypted": disk.encrypted,
            }
            for disk in disks
        ],
    }
