"""What CBR needs to know about a protected resource (a disk or a server) of the caller."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from opencbr.evs import service as evs
from opencbr.evs.errors import DiskNotFound, ServerNotFound

from .errors import ResourceNotFound
from .models import ResourceType

__all__ = ["OBJECT_TYPES", "PROVIDER_IDS", "ResourceInfo", "describe_resource"]

OBJECT_TYPES = {ResourceType.SERVER.value: "server", ResourceType.DISK.value: "disk"}
PROVIDER_IDS = {
    "server": "0daac4c5-6707-4851-97ba-169e36266b66",
    "disk": "d1603440-187d-4516-af25-121250c7cc97",
}


@dataclass(frozen=True)
class ResourceInfo:
    id: str
    type: str
    name: str
    size_gb: int
    availability_zone: str


def describe_resource(
    session: Session, project_id: str, resource_id: str, resource_type: str
) -> ResourceInfo:
    """The caller's disk or server; another project's answers like a missing one (S14)."""
    try:
        if resource_type == ResourceType.DISK:
            disk = evs.get_disk(session, project_id, resource_id)
            return ResourceInfo(
                disk.id, resource_type, disk.name, disk.size_gb, disk.availability_zone
            )
        if resource_type == ResourceType.SERVER:
            server = evs.get_server(session, project_id, resource_id)
            size = sum(d.size_gb for d in evs.server_disks(session, server.id))
            return ResourceInfo(
                server.id, resource_type, server.name, size, server.availability_zone
            )
    except (DiskNotFound, ServerNotFound) as exc:
        raise ResourceNotFound(id=resource_id) from exc
    raise ResourceNotFound(id=resource_id)
