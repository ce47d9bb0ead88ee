"""Paths inside a backup, as callers write them: ``/`` lists the disk's filesystems (one per
partition, or ``disk`` when it has no partition table), ``/part1/home/ann`` is a path inside
the filesystem of partition 1.

A path is normalised lexically (repeated and trailing slashes, ``.``, ``a/..``) before any
lookup; one that climbs above ``/`` is refused, as are NUL bytes and over-long names.
Symbolic links are never followed on the way (files/appliance.py), so lexical ``..`` means
what it says.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from ..errors import FilePathInvalid

__all__ = ["BackupPath", "filesystem_name", "parse_path"]

MAX_PATH = 4096
MAX_NAME = 255


@dataclass(frozen=True)
class BackupPath:
    """A normalised path: the filesystem it is in (None for ``/``) and the parts below it."""

    filesystem: str | None
    parts: tuple[str, ...]

    @property
    def text(self) -> str:
        return "/" + "/".join(self.all_parts)

    @property
    def all_parts(self) -> tuple[str, ...]:
        return (self.filesystem, *self.parts) if self.filesystem else ()


def parse_path(raw: str) -> BackupPath:
    if len(raw) > MAX_PATH:
        raise FilePathInvalid(path=raw[:64] + "...", reason=f"it is over {MAX_PATH} characters")
    if "\0" in raw:
        raise FilePathInvalid(path=raw, reason="it holds a NUL character")
    parts: list[str] = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise FilePathInvalid(path=raw, reason="'..' climbs above the backup's root")
            parts.pop()
            continue
        if len(part.encode()) > MAX_NAME:
            raise FilePathInvalid(path=raw, reason=f"a name is over {MAX_NAME} bytes")
        parts.append(part)
    if not parts:
        return BackupPath(None, ())
    return BackupPath(parts[0], tuple(parts[1:]))


_PARTITION = re.compile(r"^/dev/[a-z]+d[a-z]+(\d+)$")
_WHOLE = re.compile(r"^/dev/[a-z]+d[a-z]+$")


def filesystem_name(device: str) -> str:
    """The name a filesystem's device gets at the top of a backup's tree: ``partN`` for
    partition N, ``disk`` for a filesystem on the whole disk, ``VG-LV`` for a logical volume."""
    found = _PARTITION.match(device)
    if found:
        return f"part{found.group(1)}"
    if _WHOLE.match(device):
        return "disk"
    name = posixpath.relpath(device, "/dev").replace("/", "-")
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
