"""The bodies of EVS's smaller routes (see `core.wire`): disk updates and tags, transfers,
zones, types and quotas, as the vendor's Cinder-compatible API gives them."""

from __future__ import annotations

from pydantic import Field

from opencbr.core.wire import Wire

from .responses import Link, VolumeOut

__all__ = [
    "AvailabilityZones",
    "QuotaSetOne",
    "TransferList",
    "TransferOne",
    "UpdatedVolume",
    "VolumeProjectTags",
    "VolumeTags",
    "VolumeTypes",
    "VolumesByTags",
]


class UpdatedVolume(VolumeOut):
    extended_status: None = Field(alias="os-volume-replication:extended_status")


class Tag(Wire):
    key: str
    value: str


class VolumeTags(Wire):
    tags: list[Tag]


class VolumeProjectTags(Wire):
    tags: dict[str, list[str]]


class TaggedVolumeDetail(VolumeOut):
    consistencygroup_id: None
    extended_status: None = Field(alias="os-volume-replication:extended_status")
    migstat: None = Field(alias="os-vol-mig-status-attr:migstat")
    name_id: None = Field(alias="os-vol-mig-status-attr:name_id")
    dedicated_storage_id: None
    dedicated_storage_name: None


class TaggedVolume(Wire):
    resource_id: str
    resource_name: str
    resource_detail: TaggedVolumeDetail
    tags: list[Tag]


class VolumesByTags(Wire):
    resources: list[TaggedVolume]
    total_count: int


class ZoneState(Wire):
    available: bool


class Zone(Wire):
    zoneName: str  # noqa: N815 (the wire's name)
    zoneState: ZoneState  # noqa: N815


class AvailabilityZones(Wire):
    availabilityZoneInfo: list[Zone]  # noqa: N815


class VolumeType(Wire):
    id: str
    name: str
    description: str
    extra_specs: dict[str, str]
    qos_specs_id: None
    is_public: bool


class VolumeTypes(Wire):
    volume_types: list[VolumeType]


class Quota(Wire):
    in_use: int
    limit: int
    reserved: int


class QuotaSet(Wire):
    """`volumes`, `gigabytes`, ... and the same per disk type (`volumes_SAS`, ...)."""

    id: str
    volumes: Quota
    gigabytes: Quota
    snapshots: Quota
    backups: Quota
    backup_gigabytes: Quota
    per_volume_gigabytes: Quota
    volumes_SATA: Quota  # noqa: N815
    gigabytes_SATA: Quota  # noqa: N815
    snapshots_SATA: Quota  # noqa: N815
    volumes_SAS: Quota  # noqa: N815
    gigabytes_SAS: Quota  # noqa: N815
    snapshots_SAS: Quota  # noqa: N815
    volumes_SSD: Quota  # noqa: N815
    gigabytes_SSD: Quota  # noqa: N815
    snapshots_SSD: Quota  # noqa: N815


class QuotaSetOne(Wire):
    quota_set: QuotaSet


class TransferOut(Wire):
    id: str
    name: str
    volume_id: str
    links: list[Link]
    created_at: str | None = None  # in a transfer's detail
    auth_key: str | None = None  # once, when the transfer is made


class TransferOne(Wire):
    transfer: TransferOut


class TransferList(Wire):
    transfers: list[TransferOut]
