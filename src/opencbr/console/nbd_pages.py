"""A disk's NBD connection page: open (read-write or read-only), show the URI and the QEMU
command that boots from it, close."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from opencbr.evs import nbd
from opencbr.evs import service as evs

from .web import Ctx, Form, get, post, redirect, render, url

__all__ = ["router"]

router = APIRouter()


@router.get("/disks/{disk_id}/nbd")
async def disk_nbd(request: Request, disk_id: str) -> Response:
    def body(ctx: Ctx) -> Response:
        disk = evs.get_disk(ctx.session, ctx.project.id, disk_id)
        export = nbd.show_export(ctx.session, ctx.actor, disk_id)
        return render(ctx, ctx.request, "disk_nbd.html", nav="disks", disk=disk, export=export)

    return await get(request, body)


@router.post("/disks/{disk_id}/nbd")
async def disk_nbd_open(request: Request, disk_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        read_only = form.flag("read_only")
        nbd.open_export(ctx.session, ctx.runtime, ctx.actor, disk_id, read_only=read_only)
        return redirect(url(f"/disks/{disk_id}/nbd"), ("ok", "The NBD export is open."))

    return await post(request, action, url(f"/disks/{disk_id}/nbd"))


@router.post("/disks/{disk_id}/nbd/close")
async def disk_nbd_close(request: Request, disk_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        nbd.close_export(ctx.session, ctx.actor, disk_id)
        return redirect(url(f"/disks/{disk_id}/nbd"), ("ok", "The NBD export is closed."))

    return await post(request, action, url(f"/disks/{disk_id}/nbd"))
