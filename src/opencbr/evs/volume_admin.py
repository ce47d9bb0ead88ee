"""Disk settings and the project's disk catalogue: name and description (UpdateVolume), tags
(at most 10 `key: value` per disk), the availability zones and disk types a project can
choose, and its quotas with what it uses.

Every call reads the caller's project only: another project's disk answers EVS.0404 like a
missing one, another project's quotas the same as an unknown project (S14). Bad input is an
EVS.0400 that changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opencbr.core.context import Actor
from opencbr.core.errors import ProjectNotFound

from .errors import EvsValidationFailed
from .models import Disk, DiskStatus, Snapshot
from .service import MAX_SIZE_GB, VOLUME_TYPES, get_disk

__all__ = [
    "MAX_TAGS",
    "Usage",
    "availability_zones",
    "disk_tags",
    "find_by_tags",
    "project_tags",
    "remove_tags",
    "set_tags",
    "update_disk",
    "usage",
    "volume_types",
]

MAX_TAGS = 10
MAX_KEY, MAX_VALUE = 36, 43  # the vendor's EVS tag limits
_GONE = (DiskStatus.DELETING,)


def _project(actor: Actor) -> str:
    assert actor.project_id is not None
    return actor.project_id


def update_disk(
    session: Session, actor: Actor, disk_id: str, name: str | None, description: str | None
) -> Disk:
    disk = get_disk(session, _project(actor), disk_id, lock=True)
    if name is not None and len(name) > 255:
        raise EvsValidationFailed(reason="volume.name is at most 255 characters")
    if description is not None and len(description) > 255:
        raise EvsValidationFailed(reason="volume.description is at most 255 characters")
    if name is not None:
        disk.name = name
    if description is not None:
        disk.description = description
    session.flush()
    return disk


def _check_tag(key: str, value: str) -> None:
    if not 1 <= len(key) <= MAX_KEY or len(value) > MAX_VALUE:
        raise EvsValidationFailed(
            reason=f"a tag key is 1-{MAX_KEY} characters and its value at most {MAX_VALUE}"
        )


def disk_tags(session: Session, actor: Actor, disk_id: str) -> dict[str, str]:
    return dict(get_disk(session, _project(actor), disk_id).tags or {})


def set_tags(session: Session, actor: Actor, disk_id: str, tags: Mapping[str, str]) -> Disk:
    """Add the tags (a key the disk has gets the new value); at most 10 in all."""
    disk = get_disk(session, _project(actor), disk_id, lock=True)
    for key, value in tags.items():
        _check_tag(key, value)
    merged = {**(disk.tags or {}), **tags}
    if len(merged) > MAX_TAGS:
        raise EvsValidationFailed(reason=f"a disk has at most {MAX_TAGS} tags")
    disk.tags = merged
    session.flush()
    return disk


def remove_tags(session: Session, actor: Actor, disk_id: str, keys: Sequence[str]) -> Disk:
    """Remove the keys; a key the disk lacks is ignored."""
    disk = get_disk(session, _project(actor), disk_id, lock=True)
    disk.tags = {k: v for k, v in (disk.tags or {}).items() if k not in set(keys)}
    session.flush()
    return disk


def project_tags(session: Session, actor: Actor) -> dict[str, list[str]]:
    """Every tag key on the project's disks with the values it has (ListVolumeTags)."""
    found: dict[str, list[str]] = {}
    query = select(Disk.tags).where(Disk.project_id == _project(actor))
    for tags in session.scalars(query):
        for key, value in (tags or {}).items():
            values = found.setdefault(key, [])
            if value not in values:
                values.append(value)
    return dict(sorted(found.items()))


def find_by_tags(
    session: Session,
    actor: Actor,
    tags: Mapping[str, Sequence[str]],
    name: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Disk], int]:
    """The caller's disks having every key of `tags` with one of its values (any value when
    none are listed) and, when `name` is given, that text in their name; one page (newest
    first) and how many match."""

    def matches(disk: Disk) -> bool:
        have = disk.tags or {}
        if name and name not in disk.name:
            return False
        return all(k in have and (not v or have[k] in v) for k, v in tags.items())

    query = select(Disk).where(Disk.project_id == _project(actor), Disk.status.not_in(_GONE))
    found = [
        d for d in session.scalars(query.order_by(Disk.created_at.desc(), Disk.id)) if matches(d)
    ]
    return found[offset : offset + limit], len(found)


def availability_zones(session: Session, actor: Actor) -> list[str]:
    """The zones disks and servers are made in: `az1` (the default) and any zone the project
    already uses (a zone is a name here: every zone is the same storage)."""
    used = session.scalars(
        select(Disk.availability_zone).where(Disk.project_id == _project(actor)).distinct()
    )
    return sorted({"az1", *used})


def volume_types() -> tuple[str, ...]:
    """The disk types a disk may be created with (all the same storage here)."""
    return VOLUME_TYPES


@dataclass(frozen=True)
class Usage:
    volumes: int
    gigabytes: int
    by_type: dict[str, tuple[int, int]]  # type -> (disks, GB)
    per_volume_gigabytes: int = MAX_SIZE_GB
    snapshots_by_type: dict[str, int] = field(default_factory=dict)  # disk type -> snapshots


def usage(session: Session, actor: Actor, target_project_id: str) -> Usage:
    """The caller's project's disks and GB in use (no quota limits them here)."""
    if target_project_id != actor.project_id:
        raise ProjectNotFound(project_id=target_project_id)
    rows = session.execute(
        select(Disk.volume_type, func.count(), func.coalesce(func.sum(Disk.size_gb), 0))
        .where(Disk.project_id == _project(actor), Disk.status.not_in(_GONE))
        .group_by(Disk.volume_type)
    ).all()
    by_type = {str(kind): (int(count), int(size)) for kind, count, size in rows}
    snapshots = session.execute(
        select(Disk.volume_type, func.count())
        .select_from(Snapshot)
        .join(Disk, Disk.id == Snapshot.volume_id)
        .where(Snapshot.project_id == _project(actor))
        .group_by(Disk.volume_type)
    ).all()
    return Usage(
        volumes=sum(c for c, _ in by_type.values()),
        gigabytes=sum(s for _, s in by_type.values()),
        by_type=by_type,
        snapshots_by_type={str(kind): int(count) for kind, count in snapshots},
    )
