"""Cloud Server Backups and Cloud Disk Backups: vaults, backups, sharing, shared with me."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from opencbr.cbr import backups, deletion, members, vaults
from opencbr.cbr.errors import RecipientProjectInvalid
from opencbr.cbr.models import Backup, BackupStatus, Member, MemberStatus, ResourceType, Vault
from opencbr.core.errors import AppError, NotFound, ValidationFailed
from opencbr.core.ids import HEX32_PATTERN
from opencbr.core.numbers import whole_number
from opencbr.evs import service as evs
from opencbr.evs.models import Disk, Server

from .evs_pages import project_servers
from .web import Ctx, Form, get, post, query, redirect, render, url

__all__ = ["KINDS", "router"]

router = APIRouter(prefix="/cbr/{kind}")


@dataclass(frozen=True)
class Kind:
    slug: str
    title: str
    resource_type: str
    resource_label: str


KINDS = {
    "server": Kind("server", "Cloud Server Backups", ResourceType.SERVER.value, "Server"),
    "disk": Kind("disk", "Cloud Disk Backups", ResourceType.DISK.value, "Disk"),
}


class PageNotFound(NotFound):
    template = "There is no console page {path}."


def _kind(ctx: Ctx, slug: str) -> Kind:
    if slug not in KINDS:
        raise PageNotFound(path=ctx.request.url.path)
    return KINDS[slug]


def _backup_of_kind(ctx: Ctx, kind: Kind, backup_id: str) -> Backup:
    """The visible backup, if it is of the page's kind (a disk backup has no server page)."""
    backup = backups.visible_backup(ctx.session, ctx.actor, backup_id)
    if backup.resource_type != kind.resource_type:
        raise PageNotFound(path=ctx.request.url.path)
    return backup


def _page(ctx: Ctx, kind: Kind, template: str, status: int = 200, **values: Any) -> Response:
    return render(
        ctx,
        ctx.request,
        template,
        status=status,
        kind=kind,
        kinds=KINDS,
        nav=kind.slug,
        **values,
    )


# --- vaults -----------------------------------------------------------------------------------


def _resources(ctx: Ctx, kind: Kind) -> list[Disk] | list[Server]:
    if kind.slug == "disk":
        return evs.list_disks(ctx.session, ctx.project.id)
    return project_servers(ctx.session, ctx.project.id)


def _vault_rows(ctx: Ctx, kind: Kind) -> list[dict[str, Any]]:
    found, _ = vaults.list_vaults(
        ctx.session, ctx.actor, vaults.VaultFilters(object_type=kind.slug)
    )
    rows = []
    for vault in found:
        held = vaults.vault_resources(ctx.session, vault.id)
        percent = min(100.0, 100.0 * vault.used_bytes / vault.size_bytes) if vault.size_bytes else 0
        rows.append(
            {
                "vault": vault,
                "resources": held,
                "used": vault.used_bytes,
                "free": vaults.free_bytes(vault),
                "percent": round(percent, 1),
            }
        )
    return rows


def _has_tag(vault: Vault, wanted: str) -> bool:
    """Whether the vault has the tag `key` (any value) or `key=value`."""
    key, _, value = wanted.partition("=")
    return any(
        t.get("key") == key.strip() and ("=" not in wanted or t.get("value") == value.strip())
        for t in vault.tags
    )


@router.get("/vaults")
async def vault_list(request: Request, kind: str) -> Response:
    tag = query(request, "tag")

    def body(ctx: Ctx) -> Response:
        k = _kind(ctx, kind)
        rows = [r for r in _vault_rows(ctx, k) if not tag or _has_tag(r["vault"], tag)]
        return _page(ctx, k, "vaults.html", tab="vaults", rows=rows, tag=tag)

    return await get(request, body)


@router.get("/vaults/new")
async def vault_new(request: Request, kind: str) -> Response:
    def body(ctx: Ctx) -> Response:
        k = _kind(ctx, kind)
        return _page(
            ctx, k, "vault_new.html", tab="vaults", resources=_resources(ctx, k), form=Form()
        )

    return await get(request, body)


def _size(form: Form, name: str) -> int:
    number = whole_number(form.get(name))
    if number is None:
        raise ValidationFailed(reason=f"{name.replace('_', ' ')} must be a whole number of GB")
    return number


@router.post("/vaults")
async def vault_create(request: Request, kind: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        k = _kind(ctx, kind)
        spec = vaults.VaultSpec(
            name=form.get("name"),
            object_type=k.slug,
            size_gb=_size(form, "size_gb"),
            description=form.get("description"),
            resources=[vaults.ResourceSpec(r, k.resource_type) for r in form.all("resource")],
            auto_bind=form.flag("auto_bind"),
        )
        vault = vaults.create_vault(ctx.session, ctx.actor, spec)
        return redirect(url(f"/cbr/{k.slug}/vaults"), ("ok", f"Vault {vault.name} created."))

    def again(ctx: Ctx, form: Form, error: AppError) -> Response:
        k = _kind(ctx, kind)
        return _page(
            ctx,
            k,
            "vault_new.html",
            status=error.status,
            tab="vaults",
            resources=_resources(ctx, k),
            form=form,
        )

    return await post(request, action, url(f"/cbr/{kind}/vaults"), again)


@router.get("/vaults/{vault_id}/associate")
async def vault_associate_form(request: Request, kind: str, vault_id: str) -> Response:
    def body(ctx: Ctx) -> Response:
        k = _kind(ctx, kind)
        vault = vaults.get_vault(ctx.session, ctx.actor, vault_id)
        held = {r.resource_id for r in vaults.vault_resources(ctx.session, vault.id)}
        return _page(
            ctx,
            k,
            "vault_associate.html",
            tab="vaults",
            vault=vault,
            held=held,
            resources=_resources(ctx, k),
        )

    return await get(request, body)


@router.post("/vaults/{vault_id}/associate")
async def vault_associate(request: Request, kind: str, vault_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        k = _kind(ctx, kind)
        specs = [vaults.ResourceSpec(r, k.resource_type) for r in form.all("resource")]
        added = vaults.add_resources(ctx.session, ctx.actor, vault_id, specs)
        return redirect(
            url(f"/cbr/{k.slug}/vaults"), ("ok", f"{len(added)} resource(s) associated.")
        )

    return await post(request, action, url(f"/cbr/{kind}/vaults/{vault_id}/associate"))


@router.get("/vaults/{vault_id}/backup")
async def vault_backup_form(request: Request, kind: str, vault_id: str) -> Response:
    def body(ctx: Ctx) -> Response:
        k = _kind(ctx, kind)
        vault = vaults.get_vault(ctx.session, ctx.actor, vault_id)
        return _page(
            ctx,
            k,
            "vault_backup.html",
            tab="vaults",
            vault=vault,
            held=vaults.vault_resources(ctx.session, vault.id),
            free=vaults.free_bytes(vault),
        )

    return await get(request, body)


@router.post("/vaults/{vault_id}/backup")
async def vault_backup(request: Request, kind: str, vault_id: str) -> Response:
    """Back up now: one checkpoint of the vault; its backups are made by the job workers."""

    def action(ctx: Ctx, form: Form) -> Response:
        k = _kind(ctx, kind)
        checkpoint = backups.create_checkpoint(
            ctx.session,
            ctx.actor,
            backups.CheckpointSpec(
                vault_id=vault_id,
                name=form.get("name") or None,
                description=form.get("description"),
                incremental=form.flag("incremental"),
                resources=form.all("resource"),
            ),
        )
        started = backups.list_backups(
            ctx.session, ctx.actor, backups.BackupFilters(checkpoint_id=checkpoint.id)
        ).count
        text = f"Backup {checkpoint.name} started for {started} {k.resource_label.lower()}(s)."
        if checkpoint.skipped:
            names = ", ".join(str(s.get("name") or s.get("id")) for s in checkpoint.skipped)
            text += f" Skipped (a backup is already running): {names}."
        return redirect(url(f"/cbr/{k.slug}/backups", {"vault_id": vault_id}), ("ok", text))

    return await post(request, action, url(f"/cbr/{kind}/vaults/{vault_id}/backup"))


@router.post("/vaults/{vault_id}/delete")
async def vault_delete(request: Request, kind: str, vault_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        vault = vaults.delete_vault(ctx.session, ctx.actor, vault_id)
        return redirect(url(f"/cbr/{kind}/vaults"), ("ok", f"Vault {vault.name} is being deleted."))

    return await post(request, action, url(f"/cbr/{kind}/vaults"))


# --- backups ----------------------------------------------------------------------------------


def _time(value: str, end: bool = False) -> datetime | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            parsed = datetime.strptime(value, fmt)
        except ValueError:
            continue
        if end and fmt == "%Y-%m-%d":
            parsed = parsed.replace(hour=23, minute=59, second=59)
        return parsed
    raise ValidationFailed(reason=f"time {value!r} must look like 2024-05-31 or 2024-05-31T10:30")


def _vault_names(session: Session, ids: set[str]) -> dict[str, str]:
    return {i: v.name for i in ids if i and (v := session.get(Vault, i)) is not None}


def _filters(ctx: Ctx, kind: Kind, shared: bool) -> tuple[dict[str, str], backups.BackupFilters]:
    """My Backups: own backups and shares accepted into a vault (S7); Backups Shared with Me:
    every share, or those of the chosen share status (S12)."""
    names = ("name", "status", "share_status", "vault_id", "resource", "start", "end")
    chosen = {n: query(ctx.request, n) for n in names}
    filters = backups.BackupFilters(
        name=chosen["name"] or None,
        status=None if shared else chosen["status"] or None,
        vault_id=chosen["vault_id"] or None,
        resource_name=chosen["resource"] or None,
        resource_type=kind.resource_type,
        own_type="shared" if shared else "all_granted",
        member_status=(chosen["share_status"] or None) if shared else "accepted",
        start_time=_time(chosen["start"]),
        end_time=_time(chosen["end"], end=True),
        limit=200,
    )
    return chosen, filters


def _my_member(session: Session, ctx: Ctx, backup: Backup) -> Member | None:
    if backup.project_id == ctx.project.id:
        return None
    try:
        return members.find_member(session, ctx.actor, backup.id, ctx.project.id)
    except AppError:
        return None


def _backup_rows(ctx: Ctx, page: backups.BackupPage) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for backup in page.backups:
        share = page.memberships.get(backup.id)
        vault_id = share.vault_id if share else backup.vault_id
        rows.append({"backup": backup, "member": share, "vault_id": vault_id or ""})
    names = _vault_names(ctx.session, {r["vault_id"] for r in rows})
    for row in rows:
        row["vault_name"] = names.get(row["vault_id"], "")
    return rows


_IN_PROGRESS = set(BackupStatus) - {BackupStatus.AVAILABLE, BackupStatus.ERROR}


def _backups_page(ctx: Ctx, kind: Kind, status: int = 200, **extra: Any) -> Response:
    shared = query(ctx.request, "tab") == "shared"
    chosen, filters = _filters(ctx, kind, shared)
    page = backups.list_backups(ctx.session, ctx.actor, filters)
    vault_list, _ = vaults.list_vaults(
        ctx.session, ctx.actor, vaults.VaultFilters(object_type=kind.slug)
    )
    return _page(
        ctx,
        kind,
        "backups.html",
        status=status,
        tab="shared" if shared else "backups",
        refresh="dialog" not in extra and any(b.status in _IN_PROGRESS for b in page.backups),
        rows=_backup_rows(ctx, page),
        count=page.count,
        chosen=chosen,
        vaults=vault_list,
        statuses=list(BackupStatus),
        share_statuses=list(MemberStatus),
        **extra,
    )


@router.get("/backups")
async def backup_list(request: Request, kind: str) -> Response:
    def body(ctx: Ctx) -> Response:
        return _backups_page(ctx, _kind(ctx, kind))

    return await get(request, body)


@router.get("/backups/{backup_id}")
async def backup_detail(request: Request, kind: str, backup_id: str) -> Response:
    def body(ctx: Ctx) -> Response:
        k = _kind(ctx, kind)
        backup = _backup_of_kind(ctx, k, backup_id)
        owner = backup.project_id == ctx.project.id
        shares: list[Member] = []
        if owner:
            shares, _ = members.list_members(
                ctx.session, ctx.actor, backup.id, members.MemberFilters(sort="created_at:asc")
            )
        member = _my_member(ctx.session, ctx, backup)
        vault_id = member.vault_id if member else backup.vault_id
        return _page(
            ctx,
            k,
            "backup_detail.html",
            tab="backups",
            backup=backup,
            owner=owner,
            shares=shares,
            member=member,
            vault_names=_vault_names(ctx.session, {vault_id or ""}),
            vault_id=vault_id or "",
            children=backups.children_of(ctx.session, backup.id),
            detail_tab=query(ctx.request, "tab", "details"),
        )

    return await get(request, body)


@router.post("/backups/{backup_id}/delete")
async def backup_delete(request: Request, kind: str, backup_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        backup = deletion.delete_backup(ctx.session, ctx.actor, backup_id)
        return redirect(
            url(f"/cbr/{kind}/backups"),
            ("ok", f"Backup {backup.name} is being deleted; it has left every recipient."),
        )

    return await post(request, action, url(f"/cbr/{kind}/backups"))


# --- the Share Backup dialog ------------------------------------------------------------------

_ID_SLOT = "{id}"  # where the dialog's script puts the ID it refuses


def _share_dialog(
    ctx: Ctx,
    kind: Kind,
    backup_id: str,
    added: list[str],
    status: int = 200,
    entry: str = "",
    cancelling: list[str] | None = None,
) -> Response:
    """The dialog; `cancelling` (projects chosen under Cancel Sharing) asks to confirm."""
    backup = _backup_of_kind(ctx, kind, backup_id)
    shares, _ = members.list_members(
        ctx.session, ctx.actor, backup.id, members.MemberFilters(sort="created_at:asc")
    )
    statuses = {m.dest_project_id: str(m.status) for m in shares}
    return _backups_page(
        ctx,
        kind,
        status=status,
        dialog={
            "backup": backup,
            "added": added,
            "entry": entry,
            "shares": shares,
            "tab": "cancel" if cancelling else query(ctx.request, "dialog_tab", "share"),
            "cancelling": [(p, statuses.get(p, "")) for p in cancelling or []],
            "max": members.MAX_MEMBERS,
            # The service's format rule and message, for the check as each ID is added.
            "pattern": HEX32_PATTERN,
            "malformed": RecipientProjectInvalid(
                project_id=_ID_SLOT, reason=members.MALFORMED_RECIPIENT
            ).message,
        },
    )


@router.get("/backups/{backup_id}/share")
async def share_form(request: Request, kind: str, backup_id: str) -> Response:
    def body(ctx: Ctx) -> Response:
        return _share_dialog(ctx, _kind(ctx, kind), backup_id, [])

    return await get(request, body)


@router.post("/backups/{backup_id}/share")
async def share(request: Request, kind: str, backup_id: str) -> Response:
    """Add and Remove only edit the dialog's list; OK shares with every listed project."""

    def action(ctx: Ctx, form: Form) -> Response:
        k = _kind(ctx, kind)
        added = form.all("added")
        step = form.get("step")
        if step == "add":
            entry = form.get("project_id")
            if entry and entry not in added:
                members.check_recipient_format(entry)  # the page's script checks it first
                added.append(entry)
            return _share_dialog(ctx, k, backup_id, added)
        if step.startswith("remove:"):
            return _share_dialog(ctx, k, backup_id, [p for p in added if p != step[7:]])
        pending = form.get("project_id")
        if pending and pending not in added:
            added.append(pending)
        made = members.add_members(ctx.session, ctx.actor, backup_id, added)
        return redirect(
            url(f"/cbr/{k.slug}/backups"),
            ("ok", f"Backup shared with {len(made)} project(s)."),
        )

    def again(ctx: Ctx, form: Form, error: AppError) -> Response:
        return _share_dialog(
            ctx,
            _kind(ctx, kind),
            backup_id,
            form.all("added"),
            error.status,
            entry=form.get("project_id"),
        )

    return await post(request, action, url(f"/cbr/{kind}/backups"), again)


@router.post("/backups/{backup_id}/unshare")
async def unshare(request: Request, kind: str, backup_id: str) -> Response:
    """OK first asks to confirm, naming the recipients that had accepted the backup (it
    leaves their vaults); the confirmation's own button cancels the sharing."""

    def action(ctx: Ctx, form: Form) -> Response:
        chosen = form.all("project")
        if not chosen:
            raise ValidationFailed(reason="select at least one project to cancel sharing with")
        if form.get("confirmed") != "yes":
            return _share_dialog(ctx, _kind(ctx, kind), backup_id, [], cancelling=chosen)
        for project_id in chosen:
            members.delete_member(ctx.session, ctx.actor, backup_id, project_id)
        return redirect(
            url(f"/cbr/{kind}/backups"),
            ("ok", f"Sharing cancelled for {len(chosen)} project(s)."),
        )

    back = url(f"/cbr/{kind}/backups/{backup_id}/share", {"dialog_tab": "cancel"})
    return await post(request, action, back)


# --- Backups Shared with Me: accept and reject ------------------------------------------------


@router.get("/backups/{backup_id}/accept")
async def accept_form(request: Request, kind: str, backup_id: str) -> Response:
    def body(ctx: Ctx) -> Response:
        k = _kind(ctx, kind)
        backup = _backup_of_kind(ctx, k, backup_id)
        choices = members.accept_choices(ctx.session, ctx.actor, backup)
        first_fit = next((c.vault.id for c in choices if c.fits), None)
        return _page(
            ctx,
            k,
            "accept.html",
            tab="shared",
            backup=backup,
            choices=choices,
            first_fit=first_fit,
            size=members.share_size(ctx.session, backup),
        )

    return await get(request, body)


@router.post("/backups/{backup_id}/accept")
async def accept(request: Request, kind: str, backup_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        member = members.update_member_status(
            ctx.session,
            ctx.actor,
            backup_id,
            ctx.project.id,
            "accepted",
            vault_id=form.get("vault_id") or None,
            auto_bind=form.flag("auto_bind"),
        )
        vault = ctx.session.get(Vault, member.vault_id or "")
        return redirect(
            url(f"/cbr/{kind}/backups"),
            ("ok", f"Shared backup accepted into vault {vault.name if vault else ''}."),
        )

    return await post(request, action, url(f"/cbr/{kind}/backups/{backup_id}/accept"))


@router.post("/backups/{backup_id}/reject")
async def reject(request: Request, kind: str, backup_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        members.update_member_status(ctx.session, ctx.actor, backup_id, ctx.project.id, "rejected")
        return redirect(
            url(f"/cbr/{kind}/backups", {"tab": "shared"}), ("ok", "Shared backup rejected.")
        )

    return await post(request, action, url(f"/cbr/{kind}/backups", {"tab": "shared"}))
