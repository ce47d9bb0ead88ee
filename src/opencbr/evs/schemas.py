"""Request bodies: EVS CreateVolume (as the vendor SDK sends it) and our server calls."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AttachBody",
    "CreateServerBody",
    "CreateVolumeBody",
    "DiskChoiceIn",
    "ServerIn",
    "VolumeIn",
]


class VolumeIn(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    availability_zone: str = Field(min_length=1, max_length=64)
    volume_type: str = Field(min_length=1, max_length=16)
    size: int | None = None
    backup_id: str | None = None
    count: int = Field(default=1, ge=1, le=100)
    name: str = Field(default="", max_length=255)
    description: str = Field(default="", max_length=255)
    metadata: dict[str, str] = Field(default_factory=dict)
    multiattach: bool = False
    tags: dict[str, str] = Field(default_factory=dict)
    iops: int | None = None
    throughput: int | None = None
    enterprise_project_id: str | None = None
    image_ref: str | None = Field(default=None, alias="imageRef")
    snapshot_id: str | None = None


class CreateVolumeBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    volume: VolumeIn
    server_id: str | None = None
    bss_param: dict[str, Any] | None = Field(default=None, alias="bssParam")
    scheduler_hints: dict[str, Any] | None = Field(default=None, alias="OS-SCH-HNT:scheduler_hints")


class DiskChoiceIn(BaseModel):
    """An existing disk (`volume_id`) or a new one (`size` in GB)."""

    model_config = ConfigDict(extra="forbid")

    volume_id: str | None = None
    size: int | None = Field(default=None, ge=1)
    volume_type: str = "SAS"
    name: str = ""
    encrypted: bool | None = None
    kms_key_id: str | None = None


class ServerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    availability_zone: str = "az1"
    flavor: str = "s1.small"
    system_disk: DiskChoiceIn
    data_disks: list[DiskChoiceIn] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)


class CreateServerBody(BaseModel):
    server: ServerIn


class AttachBody(BaseModel):
    volume_id: str
