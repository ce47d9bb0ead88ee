"""`opencbr kms ...`: keys, grants and the EVSAccessKMS agency, through the signed API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from .client import ApiError, Client
from .common import JsonOpt, client, edge_errors
from .output import console, print_json, print_new_id, print_record, print_rows

__all__ = ["kms_app"]

kms_app = typer.Typer(help="KMS: master keys, grants and the disk agency.", no_args_is_help=True)
key_app = typer.Typer(help="Customer master keys of the current project.", no_args_is_help=True)
grant_app = typer.Typer(help="Grants that let other accounts use a key.", no_args_is_help=True)
agency_app = typer.Typer(
    help="The EVSAccessKMS agency (encrypted disks need it).", no_args_is_help=True
)
kms_app.add_typer(key_app, name="key")
kms_app.add_typer(grant_app, name="grant")
kms_app.add_typer(agency_app, name="agency")

KeyArg = Annotated[str, typer.Argument(help="Key id (UUID).")]
STATES = {"1": "pending activation", "2": "enabled", "3": "disabled", "4": "pending deletion"}
AGENCY, TRUSTED = "EVSAccessKMS", "op_svc_evs"


def _call(api: Client, action: str, body: dict[str, Any]) -> Any:
    return api.request("POST", f"/v1.0/{api.project()}/kms/{action}", body)


def _when(epoch_ms: str | None) -> str:
    if not epoch_ms:
        return ""
    return datetime.fromtimestamp(int(epoch_ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _key_row(details: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": details["key_id"],
        "alias": details["key_alias"],
        "state": STATES.get(details["key_state"], details["key_state"]),
        "default": details["default_key_flag"] == "1",
        "created": _when(details["creation_date"]),
        "deletion": _when(details.get("scheduled_deletion_date")),
        "description": details["key_description"],
    }


@key_app.command("create")
@edge_errors
def key_create(
    alias: Annotated[str, typer.Argument(help="Alias: letters, digits, ':', '/', '_', '-'.")],
    description: Annotated[str, typer.Option(help="Description.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create an AES-256 master key."""
    info = _call(client(), "create-key", {"key_alias": alias, "key_description": description})
    print_record(info["key_info"], as_json)
    if not as_json:
        print_new_id("key", info["key_info"]["key_id"])


@key_app.command("list")
@edge_errors
def key_list(
    state: Annotated[
        str | None, typer.Option(help="Only keys in this state: 2 enabled, 3 disabled, 4 pending.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the project's keys."""
    body = {"key_state": state} if state else {}
    details = _call(client(), "list-keys", body)["key_details"]
    if as_json:
        print_json(details)
        return
    columns = ["id", "alias", "state", "default", "created", "deletion", "description"]
    print_rows([_key_row(d) for d in details], columns, False, title="KMS keys")


@key_app.command("show")
@edge_errors
def key_show(key_id: KeyArg, as_json: JsonOpt = False) -> None:
    """Show one key (also a key another account granted you describe-key on)."""
    details = _call(client(), "describe-key", {"key_id": key_id})["key_info"]
    print_record(details if as_json else _key_row(details), as_json)


def _state_verb(
    action: str, key_id: str, as_json: bool, extra: dict[str, Any] | None = None
) -> None:
    answer = _call(client(), action, {"key_id": key_id, **(extra or {})})
    status = answer.get("key_info", answer)
    if as_json:
        print_json(status)
        return
    console.print(f"key {status['key_id']}: {STATES.get(status['key_state'], status['key_state'])}")


@key_app.command("enable")
@edge_errors
def key_enable(key_id: KeyArg, as_json: JsonOpt = False) -> None:
    """Enable a disabled key."""
    _state_verb("enable-key", key_id, as_json)


@key_app.command("disable")
@edge_errors
def key_disable(key_id: KeyArg, as_json: JsonOpt = False) -> None:
    """Disable a key: every use of it is refused until it is enabled again."""
    _state_verb("disable-key", key_id, as_json)


@key_app.command("delete")
@edge_errors
def key_delete(
    key_id: KeyArg,
    pending_days: Annotated[int, typer.Option(min=7, max=1096, help="Days until deletion.")] = 7,
    as_json: JsonOpt = False,
) -> None:
    """Schedule the key's deletion (cancel with `cancel-delete` before the days pass)."""
    _state_verb("schedule-key-deletion", key_id, as_json, {"pending_days": str(pending_days)})


@key_app.command("cancel-delete")
@edge_errors
def key_cancel_delete(key_id: KeyArg, as_json: JsonOpt = False) -> None:
    """Cancel a scheduled deletion; the key comes back disabled."""
    _state_verb("cancel-key-deletion", key_id, as_json)


@grant_app.command("create")
@edge_errors
def grant_create(
    key_id: KeyArg,
    grantee: Annotated[str, typer.Argument(help="Account ID (domain) or user id of the grantee.")],
    operation: Annotated[
        list[str],
        typer.Option("--operation", "-o", help="Granted operation (repeatable)."),
    ],
    user: Annotated[bool, typer.Option("--user", help="The grantee is a user, not an account.")] = (
        False
    ),
    name: Annotated[str | None, typer.Option(help="Grant name.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Let another account (or user) use the key for the given operations."""
    body: dict[str, Any] = {
        "key_id": key_id,
        "grantee_principal": grantee,
        "grantee_principal_type": "user" if user else "domain",
        "operations": operation,
    }
    if name:
        body["name"] = name
    made = _call(client(), "create-grant", body)
    print_record(made, as_json)
    if not as_json:
        print_new_id("grant", made["grant_id"])


@grant_app.command("list")
@edge_errors
def grant_list(key_id: KeyArg, as_json: JsonOpt = False) -> None:
    """List the key's grants."""
    grants = _call(client(), "list-grants", {"key_id": key_id})["grants"]
    if as_json:
        print_json(grants)
        return
    rows = [
        {
            "grant_id": g["grant_id"],
            "grantee": g["grantee_principal"],
            "type": g["grantee_principal_type"],
            "operations": ", ".join(g["operations"]),
            "created": _when(g["creation_date"]),
        }
        for g in grants
    ]
    print_rows(rows, ["grant_id", "grantee", "type", "operations", "created"], False, "Grants")


@grant_app.command("revoke")
@edge_errors
def grant_revoke(
    key_id: KeyArg,
    grant_id: Annotated[str, typer.Argument(help="Grant id.")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a grant (key owner only); it stops working at once."""
    _call(client(), "revoke-grant", {"key_id": key_id, "grant_id": grant_id})
    if as_json:
        print_json({"key_id": key_id, "grant_id": grant_id, "revoked": True})
    else:
        console.print(f"grant {grant_id} revoked")


def agency_status(api: Client) -> dict[str, Any] | None:
    """The caller's EVSAccessKMS agency, or None."""
    found = api.request("GET", "/v3.0/OS-AGENCY/agencies", params={"name": AGENCY})["agencies"]
    return found[0] if found else None


@agency_app.command("show")
@edge_errors
def agency_show(as_json: JsonOpt = False) -> None:
    """Show whether the account's EVSAccessKMS agency exists."""
    agency = agency_status(client())
    if as_json:
        print_json({"name": AGENCY, "enabled": agency is not None, "agency": agency})
        return
    if agency is None:
        console.print(f"{AGENCY}: [yellow]not enabled[/yellow] (run `opencbr kms agency enable`)")
    else:
        console.print(f"{AGENCY}: [green]enabled[/green] (trusts {agency['trust_domain_name']})")


@agency_app.command("enable")
@edge_errors
def agency_enable(as_json: JsonOpt = False) -> None:
    """Create the EVSAccessKMS agency so the disk service may use the account's keys."""
    api = client()
    agency = agency_status(api)
    if agency is None:
        domain_id = api.request("GET", "/opencbr/v1/whoami")["domain_id"]
        body = {
            "agency": {
                "name": AGENCY,
                "domain_id": domain_id,
                "trust_domain_name": TRUSTED,
                "description": "Lets the disk service use this account's KMS keys.",
            }
        }
        try:
            agency = api.request("POST", "/v3.0/OS-AGENCY/agencies", body)["agency"]
        except ApiError as exc:  # created meanwhile by another call
            agency = agency_status(api)
            if agency is None:
                raise exc from None
    if as_json:
        print_json(agency)
        return
    console.print(f"{AGENCY}: [green]enabled[/green] (trusts {agency['trust_domain_name']})")
