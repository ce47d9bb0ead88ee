"""`opencbr configure` and `opencbr whoami`."""

from __future__ import annotations

from typing import Annotated

import typer

from .client import Profile
from .common import JsonOpt, client, edge_errors
from .output import console, print_json, print_rows

__all__ = ["configure", "whoami"]


@edge_errors
def configure(
    endpoint: Annotated[str, typer.Option(prompt=True)] = "http://127.0.0.1:8080",
    access_key: Annotated[str, typer.Option(prompt=True)] = "",
    secret_key: Annotated[str, typer.Option(prompt=True, hide_input=True)] = "",
    project_id: Annotated[str, typer.Option(prompt="Project ID (empty for none)")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Save the endpoint and credentials used by client verbs (env variables take precedence)."""
    path = Profile(endpoint, access_key, secret_key, project_id or None).save()
    if as_json:  # the secret key stays in the file
        saved = {"endpoint": endpoint, "access_key": access_key, "project_id": project_id or None}
        print_json({"profile": str(path), **saved})
    else:
        console.print(f"saved profile to {path}")


@edge_errors
def whoami(as_json: JsonOpt = False) -> None:
    """Show the Account ID, user and project IDs per region (S11)."""
    info = client().request("GET", "/opencbr/v1/whoami")
    if as_json:
        print_json(info)
        return
    console.print(f"Account ID (domain): [bold]{info['domain_id']}[/bold]  ({info['domain_name']})")
    console.print(f"User: {info['user_name']} ({info['user_id']})")
    agency = "enabled" if "EVSAccessKMS" in info.get("agencies", []) else "not enabled"
    console.print(f"EVSAccessKMS agency (encrypted disks): {agency}")
    print_rows(info["projects"], ["region", "name", "id"], False, title="Projects")
