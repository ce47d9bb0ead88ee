"""`opencbr vault ...`: vaults (capacity, type, protected resources) through the CBR v3 API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from opencbr.core.sizes import human_bytes

from .client import Client
from .common import JsonOpt, client, edge_errors
from .output import console, print_json, print_new_id, print_record, print_rows

__all__ = ["RESOURCE_TYPES", "vault_app"]

vault_app = typer.Typer(
    help="Vaults: capacity for backups, and the disks or servers they protect.",
    no_args_is_help=True,
)

RESOURCE_TYPES = {"disk": "OS::Cinder::Volume", "server": "OS::Nova::Server"}
"""The resource type a vault of each object type protects."""

MiB = 1 << 20

VaultArg = Annotated[str, typer.Argument(help="Vault id (UUID).")]
ResourcesArg = Annotated[list[str], typer.Argument(help="Disk or server id(s).")]
VAULT_COLUMNS = ["id", "name", "type", "size", "used", "free", "resources", "status", "policy"]


def _path(api: Client, suffix: str = "") -> str:
    return f"/v3/{api.project()}/vaults{suffix}"


def _row(vault: dict[str, Any]) -> dict[str, Any]:
    billing = vault["billing"]
    size, used = billing["size"] * 1024 * MiB, float(billing["used"]) * MiB
    return {
        "id": vault["id"],
        "name": vault["name"],
        "type": billing["object_type"],
        "size": human_bytes(size, trim=True),
        "used": human_bytes(used, trim=True),
        "free": human_bytes(max(0.0, size - used), trim=True),
        "resources": len(vault.get("resources") or []),
        "status": billing["status"],
        "auto_bind": vault.get("auto_bind"),
        "policy": vault.get("policy_id"),
        "description": vault.get("description"),
        "created_at": vault.get("created_at"),
    }


def _show(vault: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(vault)
        return
    print_record(_row(vault), False)
    resources = vault.get("resources") or []
    if resources:
        rows = [
            {
                "id": r["id"],
                "name": r.get("name"),
                "type": r["type"],
                "size": human_bytes(int(r.get("size") or 0) * 1024 * MiB, trim=True),
                "backups": r.get("backup_count"),
                "backup_size": human_bytes(float(r.get("backup_size") or 0) * MiB, trim=True),
            }
            for r in resources
        ]
        columns = ["id", "name", "type", "size", "backups", "backup_size"]
        print_rows(rows, columns, False, title="Protected resources")


def _resources(object_type: str, ids: list[str]) -> list[dict[str, str]]:
    return [{"id": i, "type": RESOURCE_TYPES[object_type]} for i in ids]


@vault_app.command("create")
@edge_errors
def create(
    name: Annotated[str, typer.Option("--name", help="1-64 letters, digits, '_' or '-'.")],
    size_gb: Annotated[int, typer.Option("--size-gb", help="Capacity in GB (1 to 10485760).")],
    object_type: Annotated[
        str, typer.Option("--type", help="What it protects: disk or server.")
    ] = "disk",
    resource: Annotated[
        list[str] | None, typer.Option("--resource", "-r", help="Disk or server id; repeat.")
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    policy: Annotated[str | None, typer.Option("--policy", help="Backup policy id.")] = None,
    auto_bind: Annotated[
        bool, typer.Option("--auto-bind", help="Protect new unprotected resources itself.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a vault."""
    if object_type not in RESOURCE_TYPES:
        raise typer.BadParameter("--type must be disk or server")
    vault: dict[str, Any] = {
        "name": name,
        "billing": {
            "object_type": object_type,
            "protect_type": "backup",
            "consistent_level": "crash_consistent",
            "size": size_gb,
        },
        "resources": _resources(object_type, list(resource or [])),
        "auto_bind": auto_bind,
    }
    if description is not None:
        vault["description"] = description
    if policy is not None:
        vault["backup_policy_id"] = policy
    api = client()
    made = api.create(_path(api), {"vault": vault})["vault"]
    _show(made, as_json)
    if not as_json:
        print_new_id("vault", made["id"])


@vault_app.command("list")
@edge_errors
def list_vaults(
    name: Annotated[str | None, typer.Option("--name", help="Only vaults with this name.")] = None,
    object_type: Annotated[
        str | None, typer.Option("--type", help="Only disk or server vaults.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the project's vaults."""
    api = client()
    params = {"name": name, "object_type": object_type}
    found = api.request("GET", _path(api), params=params)
    if as_json:
        print_json(found["vaults"])
        return
    print_rows([_row(v) for v in found["vaults"]], VAULT_COLUMNS, False, title="Vaults")


@vault_app.command("show")
@edge_errors
def show(vault_id: VaultArg, as_json: JsonOpt = False) -> None:
    """Show a vault and the resources it protects."""
    api = client()
    _show(api.request("GET", _path(api, f"/{vault_id}"))["vault"], as_json)


@vault_app.command("update")
@edge_errors
def update(
    vault_id: VaultArg,
    name: Annotated[str | None, typer.Option("--name")] = None,
    size_gb: Annotated[
        int | None, typer.Option("--size-gb", help="New capacity in GB (not below used).")
    ] = None,
    auto_bind: Annotated[bool | None, typer.Option("--auto-bind/--no-auto-bind")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rename a vault, change its capacity or its automatic association."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if size_gb is not None:
        changes["billing"] = {"size": size_gb}
    if auto_bind is not None:
        changes["auto_bind"] = auto_bind
    if not changes:
        raise typer.BadParameter("give --name, --size-gb or --auto-bind/--no-auto-bind")
    api = client()
    _show(api.request("PUT", _path(api, f"/{vault_id}"), {"vault": changes})["vault"], as_json)


@vault_app.command("delete")
@edge_errors
def delete(vault_id: VaultArg, as_json: JsonOpt = False) -> None:
    """Delete a vault (its backups are deleted with it)."""
    api = client()
    api.request("DELETE", _path(api, f"/{vault_id}"))
    if as_json:
        print_json({"id": vault_id, "deleted": True})
    else:
        console.print(f"deleted vault {vault_id}")


@vault_app.command("add-resource")
@edge_errors
def add_resource(vault_id: VaultArg, resource_ids: ResourcesArg, as_json: JsonOpt = False) -> None:
    """Protect disks (disk vault) or servers (server vault) with a vault."""
    api = client()
    object_type = api.request("GET", _path(api, f"/{vault_id}"))["vault"]["billing"]["object_type"]
    body = {"resources": _resources(object_type, resource_ids)}
    added = api.request("POST", _path(api, f"/{vault_id}/addresources"), body)
    if as_json:
        print_json(added)
    else:
        console.print(f"vault {vault_id} protects {', '.join(added['add_resource_ids'])}")


@vault_app.command("remove-resource")
@edge_errors
def remove_resource(
    vault_id: VaultArg, resource_ids: ResourcesArg, as_json: JsonOpt = False
) -> None:
    """Stop protecting resources (their backups stay in the vault)."""
    api = client()
    body = {"resource_ids": resource_ids}
    removed = api.request("POST", _path(api, f"/{vault_id}/removeresources"), body)
    if as_json:
        print_json(removed)
    else:
        console.print(f"vault {vault_id} no longer protects {', '.join(resource_ids)}")
