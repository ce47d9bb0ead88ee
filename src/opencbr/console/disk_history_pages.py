"""A disk's snapshots (take, roll back, delete) and the disk recycle bin (revert, delete for
good, the project's policy). Rules in `evs.snapshots` and `evs.recycle`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from opencbr.core.numbers import whole_number
from opencbr.evs import recycle, snapshots
from opencbr.evs import service as evs
from opencbr.evs.errors import EvsValidationFailed
from opencbr.evs.recycle import PolicyChange
from opencbr.evs.snapshots import SnapshotFilter, SnapshotSpec

from .web import Ctx, Form, get, post, redirect, render, url

__all__ = ["router"]

router = APIRouter()


def _page(ctx: Ctx, template: str, **values: Any) -> Response:
    return render(ctx, ctx.request, template, nav="disks", **values)


# --- snapshots ---------------------------------------------------------------------------------


@router.get("/disks/{disk_id}/snapshots")
async def disk_snapshots(request: Request, disk_id: str) -> Response:
    def body(ctx: Ctx) -> Response:
        disk = evs.get_disk(ctx.session, ctx.project.id, disk_id)
        where = SnapshotFilter(volume_id=disk.id)
        found = snapshots.list_snapshots(ctx.session, ctx.project.id, where)
        return _page(ctx, "disk_snapshots.html", disk=disk, snapshots=found)

    return await get(request, body)


@router.post("/disks/{disk_id}/snapshots")
async def snapshot_take(request: Request, disk_id: str) -> Response:
    back = url(f"/disks/{disk_id}/snapshots")

    def action(ctx: Ctx, form: Form) -> Response:
        spec = SnapshotSpec(disk_id, form.get("name"), form.get("description"), {}, True)
        snapshot, _ = snapshots.create_snapshot(ctx.session, ctx.actor, spec)
        return redirect(back, ("ok", f"Snapshot {snapshot.name or snapshot.id} is being taken."))

    return await post(request, action, back)


@router.post("/snapshots/{snapshot_id}/rollback")
async def snapshot_rollback(request: Request, snapshot_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        _, disk, job = snapshots.rollback_snapshot(ctx.session, ctx.actor, snapshot_id, None, None)
        return redirect(url(f"/jobs/{job.id}"), ("ok", f"Disk {disk.name} is rolling back."))

    return await post(request, action, url("/disks"))


@router.post("/snapshots/{snapshot_id}/delete")
async def snapshot_delete(request: Request, snapshot_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        snapshot = snapshots.get_snapshot(ctx.session, ctx.project.id, snapshot_id)
        snapshots.delete_snapshot(ctx.runtime, ctx.session, ctx.actor, snapshot_id)
        back = url(f"/disks/{snapshot.volume_id}/snapshots")
        return redirect(back, ("ok", f"Snapshot {snapshot.name or snapshot.id} deleted."))

    return await post(request, action, url("/disks"))


# --- recycle bin -------------------------------------------------------------------------------


@router.get("/recycle-bin")
async def recycle_bin(request: Request) -> Response:
    def body(ctx: Ctx) -> Response:
        binned = recycle.list_recycled(ctx.session, ctx.project.id, {})
        policy = recycle.get_policy(ctx.session, ctx.project.id)
        return render(
            ctx, ctx.request, "recycle_bin.html", nav="recycle", disks=binned, policy=policy
        )

    return await get(request, body)


def _days(form: Form, name: str) -> int:
    days = whole_number(form.get(name))
    if days is None:
        raise EvsValidationFailed(reason=f"{name.replace('_', ' ')} must be a whole number")
    return days


@router.post("/recycle-bin/policy")
async def recycle_policy(request: Request) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        change = PolicyChange(
            form.flag("enabled"), _days(form, "threshold_days"), _days(form, "keep_days")
        )
        recycle.update_policy(ctx.session, ctx.actor, change)
        return redirect(url("/recycle-bin"), ("ok", "Recycle bin policy saved."))

    return await post(request, action, url("/recycle-bin"))


@router.post("/recycle-bin/{disk_id}/revert")
async def recycle_revert(request: Request, disk_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        disk = recycle.revert_disk(ctx.session, ctx.actor, disk_id)
        return redirect(url("/disks"), ("ok", f"Disk {disk.name or disk.id} restored."))

    return await post(request, action, url("/recycle-bin"))


@router.post("/recycle-bin/{disk_id}/delete")
async def recycle_delete(request: Request, disk_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        job = recycle.delete_recycled(ctx.session, ctx.actor, disk_id)
        return redirect(url(f"/jobs/{job.id}"), ("ok", "The disk is being deleted for good."))

    return await post(request, action, url("/recycle-bin"))
