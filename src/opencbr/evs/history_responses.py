"""The bodies of the snapshot, resize and recycle bin routes as they answer (see `core.wire`):
the vendor's `SnapshotList`/`SnapshotDetails`, `RollbackInfo`, `RecycleBinVolume` and the bin
policy."""

from __future__ import annotations

from pydantic import Field

from opencbr.core.wire import Wire

from .responses import VolumeOut

__all__ = [
    "BinnedVolumeList",
    "BinnedVolumeOne",
    "RecyclePolicyOut",
    "RollbackAnswer",
    "SnapshotList",
    "SnapshotOne",
]


class SnapshotOut(Wire):
    id: str
    status: str
    name: str
    description: str
    created_at: str
    updated_at: str | None
    metadata: dict[str, str]
    volume_id: str
    size: int
    project_id: str = Field(alias="os-extended-snapshot-attributes:project_id")
    progress: str = Field(alias="os-extended-snapshot-attributes:progress")
    dedicated_storage_id: None
    dedicated_storage_name: None
    service_type: str


class SnapshotOne(Wire):
    snapshot: SnapshotOut


class SnapshotList(Wire):
    count: int
    snapshots: list[SnapshotOut]
    snapshots_links: list[str]


class Rollback(Wire):
    volume_id: str


class RollbackAnswer(Wire):
    rollback: Rollback


class BinnedVolumeOut(VolumeOut):
    pre_deleted_at: str | None
    plan_delete_at: str | None
    dedicated_storage_id: None
    dedicated_storage_name: None


class BinnedVolumeOne(Wire):
    volume: BinnedVolumeOut


class BinnedVolumeList(Wire):
    count: int
    volumes: list[BinnedVolumeOut]


class RecyclePolicyOut(Wire):
    switch: bool
    threshold_time: int
    keep_time: int
