"""Routes of file-level restore (our extension): list, download a file, download a directory
as a tar stream. The rules are in `files/service.py`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from opencbr.core.routing import JSONRoute
from opencbr.core.web import RuntimeDep
from opencbr.iam.auth import ActorDep

from . import files

__all__ = ["router"]

router = APIRouter(prefix="/opencbr/v1/{project_id}", tags=["cbr", "files"], route_class=JSONRoute)
PathQuery = Annotated[str, Query(max_length=4096)]


@router.get("/backups/{backup_id}/files", operation_id="OpencbrListBackupFiles")
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


@router.get("/backups/{backup_id}/files/content", operation_id="OpencbrDownloadBackupFile")
def download_backup_file(
    backup_id: str, actor: ActorDep, runtime: RuntimeDep, path: PathQuery
) -> StreamingResponse:
    return _stream(files.download(runtime, actor, backup_id, path), "application/octet-stream")


@router.get("/backups/{backup_id}/files/archive", operation_id="OpencbrArchiveBackupFiles")
def archive_backup_files(
    backup_id: str, actor: ActorDep, runtime: RuntimeDep, path: PathQuery
) -> StreamingResponse:
    return _stream(files.archive(runtime, actor, backup_id, path), "application/x-tar")


def _stream(found: files.Download, media_type: str) -> StreamingResponse:
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(found.name)}"}
    if found.size is not None:
        headers["Content-Length"] = str(found.size)
    return StreamingResponse(found.chunks, media_type=media_type, headers=headers)
