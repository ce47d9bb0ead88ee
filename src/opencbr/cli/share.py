"""`opencbr share ...` (the owner) and `opencbr shared-with-me ...` (the recipient).

Both call the CBR v3 sharing API with the signed client; the rules live in the service.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .client import Client
from .common import JsonOpt, client, edge_errors
from .output import console, print_json, print_rows

__all__ = ["share_app", "shared_app"]

share_app = typer.Typer(
    help="Share your backups with other projects of the region (owner).", no_args_is_help=True
)
shared_app = typer.Typer(
    help="Backups other projects shared with yours: list, accept, reject.", no_args_is_help=True
)

BackupArg = Annotated[str, typer.Argument(help="Backup id (UUID).")]
MEMBER_COLUMNS = ["dest_project_id", "status", "vault_id", "created_at", "updated_at"]
SHARED_COLUMNS = [
    "id",
    "name",
    "member_status",
    "resource_name",
    "resource_type",
    "size_mb",
    "encrypted",
    "owner_project_id",
    "vault_id",
]


def _members_path(api: Client, backup_id: str, member: str | None = None) -> str:
    path = f"/v3/{api.project()}/backups/{backup_id}/members"
    return path if member is None else f"{path}/{member}"


@share_app.command("add")
@edge_errors
def share_add(
    backup_id: BackupArg,
    project: Annotated[
        list[str] | None, typer.Option("--project", "-p", help="Recipient project id; repeat.")
    ] = None,
    account: Annotated[
        list[str] | None,
        typer.Option("--account", help="Recipient Account ID: all its projects here; repeat."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Share a backup with up to 10 projects (all or nothing)."""
    if not project and not account:
        raise typer.BadParameter("name at least one --project or --account")
    api = client()
    body: dict[str, Any] = {"members": list(project or [])}
    if account:
        body["domains"] = list(account)
    added = api.create(_members_path(api, backup_id), body)["members"]
    print_rows(added, MEMBER_COLUMNS, as_json, title=f"Shared backup {backup_id}")


@share_app.command("list")
@edge_errors
def share_list(
    backup_id: BackupArg,
    status: Annotated[
        str | None, typer.Option(help="Only members in this status: pending, accepted, rejected.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List who a backup is shared with, and each member's status."""
    api = client()
    found = api.request("GET", _members_path(api, backup_id), params={"status": status})
    print_rows(found["members"], MEMBER_COLUMNS, as_json, title=f"Members of {backup_id}")


@share_app.command("cancel")
@edge_errors
def share_cancel(
    backup_id: BackupArg,
    positional: Annotated[
        list[str] | None, typer.Argument(metavar="[PROJECT]...", help="Recipient project id(s).")
    ] = None,
    project: Annotated[
        list[str] | None, typer.Option("--project", "-p", help="Recipient project id; repeat.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop sharing with projects; an accepted copy leaves the recipient's vault."""
    projects = list(dict.fromkeys([*(positional or []), *(project or [])]))
    if not projects:
        raise typer.BadParameter("name at least one project (-p PROJECT_ID)")
    api = client()
    for member in projects:
        api.request("DELETE", _members_path(api, backup_id, member))
    if as_json:
        print_json({"backup_id": backup_id, "cancelled": projects})
        return
    console.print(f"cancelled sharing of {backup_id} with {', '.join(projects)}")


def _shared_row(backup: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": backup["id"],
        "name": backup["name"],
        "resource_name": backup["resource_name"],
        "resource_type": backup["resource_type"],
        "size_mb": backup.get("size"),
        "encrypted": backup["extend_info"]["encrypted"],
        "owner_project_id": backup["project_id"],
        "member_status": backup.get("member_status"),
        "vault_id": backup["vault_id"],
    }


@shared_app.command("list")
@edge_errors
def shared_list(
    status: Annotated[
        str | None, typer.Option(help="Only shares in this status: pending, accepted, rejected.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the backups shared with this project (S12)."""
    api = client()
    params = {"own_type": "shared", "member_status": status}
    found = api.request("GET", f"/v3/{api.project()}/backups", params=params)["backups"]
    if as_json:
        print_json(found)
        return
    print_rows([_shared_row(b) for b in found], SHARED_COLUMNS, False, title="Shared with me")


def _decide(backup_id: str, body: dict[str, Any], as_json: bool) -> None:
    api = client()
    member = api.create(_members_path(api, backup_id, api.project()), body, method="PUT")["member"]
    if as_json:
        print_json(member)
        return
    where = f" into vault {member['vault_id']}" if member.get("vault_id") else ""
    console.print(f"backup {backup_id}: {member['status']}{where}")


@shared_app.command("accept")
@edge_errors
def shared_accept(
    backup_id: BackupArg,
    vault: Annotated[str, typer.Option("--vault", help="Your vault to hold it (needs room).")],
    auto_bind: Annotated[
        bool,
        typer.Option(
            "--auto-bind/--no-auto-bind",
            help="Switch on automatic association for the vault.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Accept a shared backup into one of your vaults (counted at its full size)."""
    body: dict[str, Any] = {"status": "accepted", "vault_id": vault}
    if auto_bind:
        body["auto_bind"] = True
    _decide(backup_id, body, as_json)


@shared_app.command("reject")
@edge_errors
def shared_reject(backup_id: BackupArg, as_json: JsonOpt = False) -> None:
    """Reject a shared backup (an accepted one leaves your vault)."""
    _decide(backup_id, {"status": "rejected"}, as_json)
