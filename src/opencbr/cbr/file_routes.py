"""Routes of file-level restore (our extension): list, download a file, download a directory
as a tar stream. The rules are in `files/service.py`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from opencbr.core.routing import JSONRoute
from opencbr.core.web import RuntimeDep
from opencbr.core.wire import Wire
from opencbr.iam.auth import ActorDep

from . import files

__all__ = ["router"]

router = APIRouter(prefix="/opencbr/v1/{project_id}", tags=["cbr", "files"], route_class=JSONRoute)
PathQuery = Annotated[str, Query(max_length=4096)]
BINARY = {"schema": {"type": "string", "format": "binary"}}


class FileEntry(Wire):
    """A filesystem of the disk (at `/`: type `filesystem`, with device, fstype and label) or
    an entry of a directory (with mode, owner, mtime and a link's target)."""

    name: str
    type: str
    size: int
    device: str | None = None
    fstype: str | None = None
    label: str | None = None
    mode: str | None = None
    uid: int | None = None
    gid: int | None = None
    mtime: str | None = None
    target: str | None = None


class FileListing(Wire):
    path: str
    type: str
    partition_table: str | None = None
    entries: list[FileEntry]


@router.get(
    "/backups/{backup_id}/files",
    operation_id="OpencbrListBackupFiles",
    response_model=FileListing,
)
def list_backup_files(
    backup_id: str, actor: ActorDep, runtime: RuntimeDep, path: PathQuery = "/"
) -> dict[str, Any]:
    listing = files.list_files(runtime, actor, backup_id, path)
    answer: dict[str, Any] = {"path": listing.path, "type": listing.type}
    if listing.partition_table is not None:
        answer["partition_table"] = listing.partition_table
        answer["entries"] = [{"type": "filesystem", **asdict(fs)} for fs in listing.filesystems]
    else:
        answer["entries"] = [asdict(entry) for entry in listing.entries]
    return answer


@router.get(
    "/backups/{backup_id}/files/content",
    operation_id="OpencbrDownloadBackupFile",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": BINARY}, "description": "Bytes"}},
)
def download_backup_file(
    backup_id: str, actor: ActorDep, runtime: RuntimeDep, path: PathQuery
) -> StreamingResponse:
    return _stream(files.download(runtime, actor, backup_id, path), "application/octet-stream")


@router.get(
    "/backups/{backup_id}/files/archive",
    operation_id="OpencbrArchiveBackupFiles",
    response_class=Response,
    responses={200: {"content": {"application/x-tar": BINARY}, "description": "A tar archive"}},
)
def archive_backup_files(
    backup_id: str, actor: ActorDep, runtime: RuntimeDep, path: PathQuery
) -> StreamingResponse:
    return _stream(files.archive(runtime, actor, backup_id, path), "application/x-tar")


def _stream(found: files.Download, media_type: str) -> StreamingResponse:
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(found.name)}"}
    if found.size is not None:
        headers["Content-Length"] = str(found.size)
    return StreamingResponse(found.chunks, media_type=media_type, headers=headers)
