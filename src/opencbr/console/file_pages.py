"""Browse files: a disk backup's filesystems and directories, with download links for files
(as they are) and directories (as tar archives). The rules are the API's (cbr/files)."""

from __future__ import annotations

import posixpath
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from opencbr.cbr import files
from opencbr.cbr.backups import visible_backup

from .web import Ctx, get, query, render

__all__ = ["router"]

router = APIRouter()


@router.get("/backups/{backup_id}/files")
async def browse_files(request: Request, backup_id: str) -> Response:
    def body(ctx: Ctx) -> Response:
        backup = visible_backup(ctx.session, ctx.actor, backup_id)
        listing = files.list_files(ctx.runtime, ctx.actor, backup_id, query(request, "path", "/"))
        return render(
            ctx,
            request,
            "backup_files.html",
            nav="disk",
            backup=backup,
            listing=listing,
            crumbs=_crumbs(listing.path),
            parent=posixpath.dirname(listing.path),
            join=posixpath.join,
        )

    return await get(request, body)


@router.get("/backups/{backup_id}/files/content")
async def file_content(request: Request, backup_id: str) -> Response:
    def body(ctx: Ctx) -> Response:
        found = files.download(ctx.runtime, ctx.actor, backup_id, query(request, "path"))
        return _stream(found, "application/octet-stream")

    return await get(request, body)


@router.get("/backups/{backup_id}/files/archive")
async def file_archive(request: Request, backup_id: str) -> Response:
    def body(ctx: Ctx) -> Response:
        found = files.archive(ctx.runtime, ctx.actor, backup_id, query(request, "path"))
        return _stream(found, "application/x-tar")

    return await get(request, body)


def _crumbs(path: str) -> list[tuple[str, str]]:
    """(name, path) of each directory from the top down to `path`."""
    crumbs = [("/", "/")]
    parts = [part for part in path.split("/") if part]
    for i, part in enumerate(parts):
        crumbs.append((part, "/" + "/".join(parts[: i + 1])))
    return crumbs


def _stream(found: files.Download, media_type: str) -> StreamingResponse:
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(found.name)}"}
    if found.size is not None:
        headers["Content-Length"] = str(found.size)
    return StreamingResponse(found.chunks, media_type=media_type, headers=headers)
