"""Disks and servers (create, create from a backup, import an image, attach, delete), job
progress, and the task list (operation logs)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from opencbr.cbr import backups, oplogs
from opencbr.cbr import jobs as cbr_jobs
from opencbr.cbr import restore as cbr_restore
from opencbr.core.errors import AppError, ValidationFailed
from opencbr.core.jobs import JobStatus, get_job
from opencbr.core.numbers import whole_number
from opencbr.evs import jobs as evs_jobs
from opencbr.evs import recycle as evs_recycle
from opencbr.evs import servers as evs_servers
from opencbr.evs import service as evs
from opencbr.evs.external import external_sources
from opencbr.evs.models import Disk, DiskStatus, Server
from opencbr.evs.service import DiskSpec, volume_from_backup
from opencbr.kms import keys as kms_keys

from .web import (
    Ctx,
    Form,
    get,
    post,
    query,
    read_form,
    redirect,
    render,
    url,
)

__all__ = ["project_servers", "router"]

router = APIRouter()


AZS = ("az1", "az2")


def project_servers(session: Session, project_id: str) -> list[Server]:
    """The project's servers, newest first (the same read as the ListServers route)."""
    found = select(Server).where(Server.project_id == project_id)
    return list(session.scalars(found.order_by(Server.created_at.desc(), Server.id)))


def _page(ctx: Ctx, template: str, nav: str, status: int = 200, **values: Any) -> Response:
    return render(ctx, ctx.request, template, status=status, nav=nav, **values)


def _usable_keys(ctx: Ctx) -> list[Any]:
    found, _ = kms_keys.list_keys(ctx.session, ctx.actor, states=["2"])
    return found


# --- disks ------------------------------------------------------------------------------------


@router.get("/disks")
async def disk_list(request: Request) -> Response:
    def body(ctx: Ctx) -> Response:
        disks = evs.list_disks(ctx.session, ctx.project.id)
        servers = project_servers(ctx.session, ctx.project.id)
        return _page(
            ctx,
            "disks.html",
            "disks",
            disks=disks,
            external=external_sources(ctx.session, [d.id for d in disks]),
            servers=servers,
            server_names={s.id: s.name for s in servers},
        )

    return await get(request, body)


def _disk_form(ctx: Ctx, form: Form, status: int = 200) -> Response:
    backup_id = form.get("backup_id") or query(ctx.request, "backup_id")
    backup = backups.visible_backup(ctx.session, ctx.actor, backup_id) if backup_id else None
    return _page(
        ctx,
        "disk_new.html",
        "disks",
        status=status,
        form=form,
        backup=backup,
        keys=_usable_keys(ctx),
        azs=AZS,
        volume_types=evs.VOLUME_TYPES,
    )


@router.get("/disks/new")
async def disk_new(request: Request) -> Response:
    return await get(request, lambda ctx: _disk_form(ctx, Form()))


def _optional_size(form: Form) -> int | None:
    text = form.get("size_gb")
    if not text:
        return None
    number = whole_number(text)
    if number is None:
        raise ValidationFailed(reason="size must be a whole number of GB")
    return number


@router.post("/disks")
async def disk_create(request: Request) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        spec = DiskSpec(
            name=form.get("name"),
            size_gb=_optional_size(form),
            availability_zone=form.get("availability_zone", "az1"),
            volume_type=form.get("volume_type", "SAS"),
            description=form.get("description"),
            encrypted=True if form.flag("encrypted") else None,
            kms_key_id=form.get("kms_key_id") or None,
            backup_id=form.get("backup_id") or None,
        )
        if spec.backup_id:
            make = volume_from_backup(ctx.runtime)
            disk, job = make(ctx.session, ctx.runtime, ctx.actor, spec)
            made = [disk]
        else:
            made, job = evs.create_disks(ctx.session, ctx.runtime, ctx.actor, spec)
        return redirect(
            url(f"/jobs/{job.id}"), ("ok", f"Creating disk {made[0].name or made[0].id}.")
        )

    return await post(request, action, url("/disks"), lambda c, f, e: _disk_form(c, f, e.status))


@router.post("/disks/{disk_id}/attach")
async def disk_attach(request: Request, disk_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        disk = evs_servers.attach_disk(ctx.session, ctx.actor, form.get("server_id"), disk_id)
        return redirect(url("/disks"), ("ok", f"Disk {disk.name} attached as {disk.device}."))

    return await post(request, action, url("/disks"))


@router.post("/disks/{disk_id}/detach")
async def disk_detach(request: Request, disk_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        disk = evs.get_disk(ctx.session, ctx.project.id, disk_id)
        evs_servers.detach_disk(ctx.session, ctx.actor, disk.server_id or "", disk_id)
        return redirect(url("/disks"), ("ok", f"Disk {disk.name} detached."))

    return await post(request, action, url("/disks"))


@router.post("/disks/{disk_id}/delete")
async def disk_delete(request: Request, disk_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        job = evs_recycle.delete_or_recycle(ctx.session, ctx.actor, disk_id)
        return redirect(url(f"/jobs/{job.id}"), ("ok", "The disk is being deleted."))

    return await post(request, action, url("/disks"))


@router.get("/disks/{disk_id}/import")
async def disk_import_form(request: Request, disk_id: str) -> Response:
    def body(ctx: Ctx) -> Response:
        disk = evs.get_disk(ctx.session, ctx.project.id, disk_id)
        return _page(ctx, "disk_import.html", "disks", disk=disk)

    return await get(request, body)


@router.post("/disks/{disk_id}/import")
async def disk_import(request: Request, disk_id: str) -> Response:
    """Replace a disk's contents with an uploaded raw image. The bytes are copied after the
    (short) unit of work that opens the volume, never inside a transaction."""
    form = await read_form(request)
    upload = form.file("image")
    with tempfile.TemporaryDirectory(prefix="opencbr-import-") as folder:
        staged = Path(folder) / "image.raw"
        if upload is not None:
            with staged.open("wb") as out:
                await run_in_threadpool(shutil.copyfileobj, upload.file, out, 1 << 20)

        def action(ctx: Ctx, form: Form) -> Response:
            if upload is None or not upload.filename:
                raise ValidationFailed(reason="choose an image file to import")
            volume = evs.data_volume(ctx.runtime, ctx.session, ctx.actor, disk_id)
            ctx.session.commit()  # release the database before moving bytes
            copied = volume.import_file(staged)
            return redirect(url("/disks"), ("ok", f"Imported {copied} bytes of {upload.filename}."))

        return await post(request, action, url(f"/disks/{disk_id}/import"), form=form)


# --- servers ----------------------------------------------------------------------------------


@router.get("/servers")
async def server_list(request: Request) -> Response:
    def body(ctx: Ctx) -> Response:
        servers = project_servers(ctx.session, ctx.project.id)
        disks = {s.id: evs.server_disks(ctx.session, s.id) for s in servers}
        free = [
            d
            for d in evs.list_disks(ctx.session, ctx.project.id)
            if d.server_id is None and d.status == DiskStatus.AVAILABLE
        ]
        return _page(ctx, "servers.html", "servers", servers=servers, disks=disks, free=free)

    return await get(request, body)


def _server_form(ctx: Ctx, form: Form, status: int = 200) -> Response:
    backup_id = form.get("backup_id") or query(ctx.request, "backup_id")
    backup = backups.visible_backup(ctx.session, ctx.actor, backup_id) if backup_id else None
    return _page(
        ctx,
        "server_new.html",
        "servers",
        status=status,
        form=form,
        backup=backup,
        backup_disks=backups.children_of(ctx.session, backup.id) if backup else [],
        keys=_usable_keys(ctx),
        azs=AZS,
    )


@router.get("/servers/new")
async def server_new(request: Request) -> Response:
    return await get(request, lambda ctx: _server_form(ctx, Form()))


def _choice(form: Form, prefix: str, name: str) -> evs_servers.DiskChoice:
    size = whole_number(form.get(f"{prefix}_size_gb"))
    if size is None:
        raise ValidationFailed(reason=f"{prefix.replace('_', ' ')} size must be a whole number")
    return evs_servers.DiskChoice(
        size_gb=size,
        volume_type=form.get("volume_type", "SAS"),
        encrypted=True if form.flag("encrypted") else None,
        kms_key_id=form.get("kms_key_id") or None,
        name=name,
    )


@router.post("/servers")
async def server_create(request: Request) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        name = form.get("name")
        if form.get("backup_id"):
            server, job = cbr_restore.server_from_backup(
                ctx.session,
                ctx.runtime,
                ctx.actor,
                form.get("backup_id"),
                name,
                availability_zone=form.get("availability_zone") or None,
                kms_key_id=form.get("kms_key_id") or None,
            )
            return redirect(
                url(f"/jobs/{job.id}"), ("ok", f"Creating server {server.name} from the backup.")
            )
        data = [_choice(form, "data_disk", f"{name}-data")] if form.get("data_disk_size_gb") else []
        spec = evs_servers.ServerSpec(
            name=name,
            system_disk=_choice(form, "system_disk", f"{name}-system"),
            data_disks=data,
            availability_zone=form.get("availability_zone", "az1"),
            flavor=form.get("flavor", "s1.small"),
        )
        server, job = evs_servers.create_server(ctx.session, ctx.runtime, ctx.actor, spec)
        return redirect(url(f"/jobs/{job.id}"), ("ok", f"Creating server {server.name}."))

    return await post(
        request, action, url("/servers"), lambda c, f, e: _server_form(c, f, e.status)
    )


@router.post("/servers/{server_id}/attach")
async def server_attach(request: Request, server_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        disk = evs_servers.attach_disk(ctx.session, ctx.actor, server_id, form.get("disk_id"))
        return redirect(url("/servers"), ("ok", f"Disk {disk.name} attached as {disk.device}."))

    return await post(request, action, url("/servers"))


@router.post("/servers/{server_id}/delete")
async def server_delete(request: Request, server_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        evs_servers.delete_server(
            ctx.session, ctx.actor, server_id, delete_disks=form.flag("delete_disks")
        )
        return redirect(url("/servers"), ("ok", "Server deleted."))

    return await post(request, action, url("/servers"))


# --- running work -----------------------------------------------------------------------------


@router.get("/jobs/{job_id}")
async def job_progress(request: Request, job_id: str) -> Response:
    def body(ctx: Ctx) -> Response:
        job = get_job(ctx.session, job_id, ctx.project.id)
        running = job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
        payload = job.payload
        disk_ids = [
            *(payload.get("disk_ids") or [payload.get("disk_id")]),
            *(t.get("disk_id") for t in payload.get("targets") or []),
        ]
        disks = [d for d in (ctx.session.get(Disk, i) for i in disk_ids if i) if d is not None]
        disks = [d for d in disks if d.project_id == ctx.project.id]
        server = ctx.session.get(Server, payload.get("server_id") or "")
        if server is not None and server.project_id != ctx.project.id:
            server = None
        title = (
            cbr_jobs.job_title(ctx.session, job) or evs_jobs.job_title(ctx.session, job) or job.kind
        )
        return _page(
            ctx,
            "job.html",
            "tasks",
            job=job,
            title=title,
            running=running,
            disks=disks,
            server=server,
        )

    return await get(request, body)


@router.get("/tasks")
async def task_list(request: Request) -> Response:
    def body(ctx: Ctx) -> Response:
        logs, _ = oplogs.list_oplogs(ctx.session, ctx.actor, oplogs.OpLogFilters(limit=100))
        progress: dict[str, int] = {}
        for log in logs:
            if log.status == "running" and log.job_id:
                try:
                    progress[log.id] = get_job(ctx.session, log.job_id, ctx.project.id).progress
                except AppError:
                    progress[log.id] = 0
            else:
                common = (log.extra_info or {}).get("common", {})
                progress[log.id] = int(common.get("progress", 100))
        running = any(log.status == "running" for log in logs)
        return _page(ctx, "tasks.html", "tasks", logs=logs, percent=progress, running=running)

    return await get(request, body)
