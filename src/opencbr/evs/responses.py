"""The bodies of the EVS routes as they answer (see `core.wire`): the vendor's `VolumeDetail`
and `ShowJob` fields, and our servers and NBD exports (`views.py` builds them)."""

from __future__ import annotations

from pydantic import Field

from opencbr.core.wire import FreeForm, Wire

__all__ = [
    "CreateVolumeAnswer",
    "DataWritten",
    "Extents",
    "ExternalVolumeList",
    "ExternalVolumeOne",
    "JobAnswer",
    "JobOut",
    "NbdClosed",
    "NbdExportList",
    "NbdExportOne",
    "ServerClosed",
    "ServerCreated",
    "ServerJobs",
    "ServerList",
    "ServerOne",
    "VolumeList",
    "VolumeOne",
]


class Attachment(Wire):
    attachment_id: str
    attached_at: str | None
    device: str
    host_name: str
    id: str
    server_id: str
    volume_id: str


class Link(Wire):
    href: str
    rel: str


class VolumeOut(Wire):
    id: str
    name: str
    status: str
    size: int
    availability_zone: str
    volume_type: str
    bootable: str
    multiattach: bool
    shareable: str
    encrypted: bool
    description: str
    attachments: list[Attachment]
    links: list[Link]
    metadata: FreeForm
    volume_image_metadata: FreeForm
    tags: dict[str, str]
    created_at: str
    updated_at: str | None
    tenant_id: str = Field(alias="os-vol-tenant-attr:tenant_id")
    host: str = Field(alias="os-vol-host-attr:host")
    snapshot_id: None
    source_volid: None
    backup_id: str | None
    service_type: str
    user_id: str
    wwn: str
    replication_status: str
    enterprise_project_id: str
    error_message: str | None


class VolumeOne(Wire):
    volume: VolumeOut


class VolumeList(Wire):
    count: int
    volumes: list[VolumeOut]
    volumes_links: list[Link]


class ExternalSource(Wire):
    type: str
    uri: str
    bitmap: str
    tls: bool
    size_bytes: int


class ExternalVolumeOut(VolumeOut):
    external_source: ExternalSource


class ExternalVolumeOne(Wire):
    volume: ExternalVolumeOut


class ExternalVolumeList(Wire):
    count: int
    volumes: list[ExternalVolumeOut]


class CreateVolumeAnswer(Wire):
    job_id: str
    volume_ids: list[str]


class JobAnswer(Wire):
    job_id: str


class JobOut(Wire):
    status: str
    job_id: str
    job_type: str
    progress: int
    entities: FreeForm
    begin_time: str | None
    end_time: str | None
    error_code: str | None
    fail_reason: str | None


class ServerDisk(Wire):
    id: str
    name: str
    device: str
    bootable: bool
    size: int
    status: str
    encrypted: bool


class ServerOut(Wire):
    id: str
    name: str
    status: str
    availability_zone: str
    flavor: str
    project_id: str
    source_backup_id: str | None
    metadata: FreeForm
    created_at: str
    updated_at: str | None
    volumes_attached: list[ServerDisk]


class ServerOne(Wire):
    server: ServerOut


class ServerCreated(Wire):
    server: ServerOut
    job_id: str


class ServerList(Wire):
    servers: list[ServerOut]
    count: int


class ServerJobs(Wire):
    job_ids: list[str]


class NbdExport(Wire):
    volume_id: str
    uri: str
    export_name: str
    host: str
    port: int
    read_only: bool
    tls: str | None = Field(
        description="the client's TLS credentials: psk or x509 (the URI is then nbds://); null:"
        " none"
    )


class NbdExportOne(Wire):
    export: NbdExport


class NbdExportList(Wire):
    exports: list[NbdExport]


class NbdClosed(Wire):
    volume_id: str
    closed: bool


class ServerClosed(Wire):
    server_id: str
    closed: int


class DataWritten(Wire):
    volume_id: str
    offset: int
    length: int


class Extent(Wire):
    offset: int
    length: int


class Extents(Wire):
    volume_id: str
    size_bytes: int
    extents: list[Extent]
