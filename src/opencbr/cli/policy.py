"""`opencbr policy ...`: backup policies (schedule, retention) and the vaults that follow them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .common import JsonOpt, client, edge_errors
from .output import console, print_json, print_new_id, print_record, print_rows

__all__ = ["policy_app"]

policy_app = typer.Typer(help="Backup policies: schedules, retention, vault association.")

PatternOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--pattern",
        help="A schedule rule (UTC), repeatable, e.g. 'FREQ=DAILY;BYHOUR=2;BYMINUTE=0'.",
    ),
]
MaxOpt = Annotated[int | None, typer.Option("--max-backups", help="Keep the newest N.")]
DaysOpt = Annotated[
    int | None, typer.Option("--retention-days", help="Keep backups of the last N days.")
]
DayOpt = Annotated[int | None, typer.Option("--day-backups", help="Also keep N daily backups.")]
WeekOpt = Annotated[int | None, typer.Option("--week-backups", help="Also keep N weekly ones.")]
MonthOpt = Annotated[int | None, typer.Option("--month-backups", help="Also keep N monthly.")]
YearOpt = Annotated[int | None, typer.Option("--year-backups", help="Also keep N yearly ones.")]
TimezoneOpt = Annotated[
    str | None, typer.Option("--timezone", help="For day/week/month/year rules, e.g. UTC+08:00.")
]
WindowOpt = Annotated[
    int | None, typer.Option("--start-window", help="Minutes a late run may still start (60-480).")
]


def _path(suffix: str = "") -> str:
    return f"/v3/{client().project()}{suffix}"


def _definition(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _row(policy: dict[str, Any]) -> dict[str, Any]:
    definition = policy.get("operation_definition") or {}
    retention = ", ".join(f"{k}={v}" for k, v in definition.items()) or "keep forever"
    return {
        "id": policy["id"],
        "name": policy["name"],
        "enabled": policy["enabled"],
        "schedule": " | ".join(policy["trigger"]["properties"]["pattern"]),
        "retention": retention,
        "vaults": ", ".join(v["vault_id"] for v in policy.get("associated_vaults") or []),
    }


def _show(policy: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(policy)
    else:
        print_record(_row(policy), False)


@policy_app.command("create")
@edge_errors
def create(
    name: Annotated[str, typer.Option("--name", help="1-64 letters, digits, '_' or '-'.")],
    pattern: PatternOpt = None,
    max_backups: MaxOpt = None,
    retention_days: DaysOpt = None,
    day_backups: DayOpt = None,
    week_backups: WeekOpt = None,
    month_backups: MonthOpt = None,
    year_backups: YearOpt = None,
    timezone: TimezoneOpt = None,
    start_window: WindowOpt = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it switched off.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a backup policy."""
    properties: dict[str, Any] = {"pattern": pattern or []}
    if start_window is not None:
        properties["start_window_minutes"] = start_window
    body = {
        "policy": {
            "name": name,
            "enabled": not disabled,
            "operation_type": "backup",
            "operation_definition": _definition(
                max_backups=max_backups,
                retention_duration_days=retention_days,
                day_backups=day_backups,
                week_backups=week_backups,
                month_backups=month_backups,
                year_backups=year_backups,
                timezone=timezone,
            ),
            "trigger": {"properties": properties},
        }
    }
    made = client().create(_path("/policies"), body)["policy"]
    _show(made, as_json)
    if not as_json:
        print_new_id("policy", made["id"])


@policy_app.command("list")
@edge_errors
def list_(
    vault_id: Annotated[str | None, typer.Option("--vault-id", help="Only this vault's.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the project's policies."""
    found = client().request("GET", _path("/policies"), params={"vault_id": vault_id})
    if as_json:
        print_json(found)
        return
    rows = [_row(p) for p in found["policies"]]
    columns = ["id", "name", "enabled", "schedule", "retention", "vaults"]
    print_rows(rows, columns, False, title="Policies")


@policy_app.command("show")
@edge_errors
def show(policy_id: str, as_json: JsonOpt = False) -> None:
    """Show one policy."""
    _show(client().request("GET", _path(f"/policies/{policy_id}"))["policy"], as_json)


@policy_app.command("update")
@edge_errors
def update(
    policy_id: str,
    name: Annotated[str | None, typer.Option("--name")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Switch the policy on or off.")
    ] = None,
    pattern: PatternOpt = None,
    max_backups: MaxOpt = None,
    retention_days: DaysOpt = None,
    day_backups: DayOpt = None,
    week_backups: WeekOpt = None,
    month_backups: MonthOpt = None,
    year_backups: YearOpt = None,
    timezone: TimezoneOpt = None,
    start_window: WindowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a policy. Retention options, when any is given, replace the whole retention."""
    changes: dict[str, Any] = _definition(name=name, enabled=enabled)
    definition = _definition(
        max_backups=max_backups,
        retention_duration_days=retention_days,
        day_backups=day_backups,
        week_backups=week_backups,
        month_backups=month_backups,
        year_backups=year_backups,
        timezone=timezone,
    )
    if definition:
        changes["operation_definition"] = definition
    properties = _definition(pattern=pattern or None, start_window_minutes=start_window)
    if properties:
        changes["trigger"] = {"properties": properties}
    path = _path(f"/policies/{policy_id}")
    _show(client().request("PUT", path, {"policy": changes})["policy"], as_json)


@policy_app.command("delete")
@edge_errors
def delete(policy_id: str, as_json: JsonOpt = False) -> None:
    """Delete a policy (its vaults keep their backups and follow no policy)."""
    client().request("DELETE", _path(f"/policies/{policy_id}"))
    if as_json:
        print_json({"id": policy_id, "deleted": True})
    else:
        console.print(f"deleted policy {policy_id}")


@policy_app.command("associate")
@edge_errors
def associate(vault_id: str, policy_id: str, as_json: JsonOpt = False) -> None:
    """Make a vault follow a policy (replacing the one it followed)."""
    path = _path(f"/vaults/{vault_id}/associatepolicy")
    done = client().request("POST", path, {"policy_id": policy_id})
    if as_json:
        print_json(done)
    else:
        console.print(f"vault {vault_id} follows policy {policy_id}")


@policy_app.command("dissociate")
@edge_errors
def dissociate(vault_id: str, policy_id: str, as_json: JsonOpt = False) -> None:
    """Stop a vault following a policy."""
    path = _path(f"/vaults/{vault_id}/dissociatepolicy")
    done = client().request("POST", path, {"policy_id": policy_id})
    if as_json:
        print_json(done)
    else:
        console.print(f"vault {vault_id} no longer follows policy {policy_id}")
