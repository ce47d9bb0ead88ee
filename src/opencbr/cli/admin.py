"""`opencbr admin ...`: tenant bootstrap straight on the database (no server needed).

Each verb imports the IAM service (and with it the ORM) when it runs, so that the API verbs of
the CLI start without loading the database stack."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from .common import DatabaseUrlOpt, DataDirOpt, JsonOpt, admin_session, edge_errors
from .output import console, print_json, print_record, print_rows

__all__ = ["admin_app"]

admin_app = typer.Typer(help="Administer tenants directly on the database.", no_args_is_help=True)
tenant_app = typer.Typer(
    help="Tenants: a domain with projects, a user and an access key.", no_args_is_help=True
)
domain_app = typer.Typer(help="Domains (accounts).", no_args_is_help=True)
project_app = typer.Typer(help="Projects (one domain, one region).", no_args_is_help=True)
user_app = typer.Typer(help="Users.", no_args_is_help=True)
key_app = typer.Typer(help="Access keys (AK/SK).", no_args_is_help=True)
for name, sub in [
    ("tenant", tenant_app),
    ("domain", domain_app),
    ("project", project_app),
    ("user", user_app),
    ("access-key", key_app),
]:
    admin_app.add_typer(sub, name=name)

RegionOpt = Annotated[list[str], typer.Option("--region", help="Region (repeatable).")]


def _deleted(kind: str, ident: str, as_json: bool) -> None:
    """What a delete verb prints: the same object as `vault delete --json` and the others."""
    if as_json:
        print_json({"id": ident, "deleted": True})
    else:
        console.print(f"deleted {kind} {ident}")


@tenant_app.command("create")
@edge_errors
def tenant_create(
    name: str,
    region: RegionOpt,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    password: Annotated[str | None, typer.Option(help="Password (generated when omitted).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a domain with a project in each region, its admin user and an access key."""
    from opencbr.iam import service as iam

    with admin_session(data_dir, database_url) as (runtime, session):
        creds = iam.create_tenant(
            session, runtime.root_key, runtime.settings.regions, name, region, password
        )
    if as_json:
        print_json(asdict(creds))
    else:
        print_record(asdict(creds), False)
        console.print(
            "[yellow]Keep the secret key and password: they are not shown again.[/yellow]"
        )


@tenant_app.command("list")
@domain_app.command("list")
@edge_errors
def domain_list(
    data_dir: DataDirOpt = None, database_url: DatabaseUrlOpt = None, as_json: JsonOpt = False
) -> None:
    """List domains (tenants)."""
    from opencbr.iam import service as iam

    with admin_session(data_dir, database_url) as (_, session):
        rows = [
            {"id": d.id, "name": d.name, "enabled": d.enabled, "created_at": str(d.created_at)}
            for d in iam.list_domains(session)
        ]
    print_rows(rows, ["id", "name", "enabled", "created_at"], as_json)


@tenant_app.command("delete")
@domain_app.command("delete")
@edge_errors
def domain_delete(
    domain_id: str,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a domain with its projects, users and keys (refused while it owns resources)."""
    from opencbr.iam import service as iam

    with admin_session(data_dir, database_url) as (_, session):
        iam.delete_domain(session, domain_id)
    _deleted("domain", domain_id, as_json)


@domain_app.command("create")
@edge_errors
def domain_create(
    name: str,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an empty domain."""
    from opencbr.iam import service as iam

    with admin_session(data_dir, database_url) as (_, session):
        domain = iam.create_domain(session, name)
        record = {"id": domain.id, "name": domain.name}
    print_record(record, as_json)


@project_app.command("list")
@edge_errors
def project_list(
    domain_id: Annotated[str | None, typer.Option("--domain")] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List projects."""
    from opencbr.iam import service as iam

    with admin_session(data_dir, database_url) as (_, session):
        rows = [
            {"id": p.id, "name": p.name, "region": p.region, "domain_id": p.domain_id}
            for p in iam.list_projects(session, domain_id)
        ]
    print_rows(rows, ["id", "name", "region", "domain_id"], as_json)


@project_app.command("create")
@edge_errors
def project_create(
    domain_id: str,
    region: Annotated[str, typer.Option("--region")],
    suffix: Annotated[str | None, typer.Option(help="Sub-project suffix.")] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a project of a domain in a region (`<region>` or `<region>_<suffix>`)."""
    from opencbr.iam import service as iam

    with admin_session(data_dir, database_url) as (runtime, session):
        project = iam.create_project(session, domain_id, region, runtime.settings.regions, suffix)
        record = {"id": project.id, "name": project.name, "region": project.region}
    print_record(record, as_json)


@project_app.command("delete")
@edge_errors
def project_delete(
    project_id: str,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a project (refused while it owns resources)."""
    from opencbr.iam import service as iam

    with admin_session(data_dir, database_url) as (_, session):
        iam.delete_project(session, project_id)
    _deleted("project", project_id, as_json)


@user_app.command("list")
@edge_errors
def user_list(
    domain_id: Annotated[str | None, typer.Option("--domain")] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List users."""
    from opencbr.iam import service as iam

    with admin_session(data_dir, database_url) as (_, session):
        rows = [
            {"id": u.id, "name": u.name, "domain_id": u.domain_id}
            for u in iam.list_users(session, domain_id)
        ]
    print_rows(rows, ["id", "name", "domain_id"], as_json)


@user_app.command("create")
@edge_errors
def user_create(
    domain_id: str,
    name: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user in a domain."""
    from opencbr.iam import service as iam

    with admin_session(data_dir, database_url) as (_, session):
        user = iam.create_user(session, domain_id, name, password)
        record = {"id": user.id, "name": user.name, "domain_id": user.domain_id}
    print_record(record, as_json)


@user_app.command("delete")
@edge_errors
def user_delete(
    user_id: str,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a user with its access keys."""
    from opencbr.iam import service as iam

    with admin_session(data_dir, database_url) as (_, session):
        iam.delete_user(session, user_id)
    _deleted("user", user_id, as_json)


@key_app.command("list")
@edge_errors
def key_list(
    user_id: Annotated[str | None, typer.Option("--user")] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List access keys (secrets are never shown again)."""
    from opencbr.iam import service as iam

    with admin_session(data_dir, database_url) as (_, session):
        rows = [
            {
                "access_key": k.access_key,
                "user_id": k.user_id,
                "enabled": k.enabled,
                "created_at": str(k.created_at),
            }
            for k in iam.list_access_keys(session, user_id)
        ]
    print_rows(rows, ["access_key", "user_id", "enabled", "created_at"], as_json)


@key_app.command("create")
@edge_errors
def key_create(
    user_id: str,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an access key; the secret key is shown once."""
    from opencbr.iam import service as iam

    with admin_session(data_dir, database_url) as (runtime, session):
        access_key, secret_key = iam.create_access_key(session, runtime.root_key, user_id)
    print_record({"access_key": access_key, "secret_key": secret_key, "user_id": user_id}, as_json)


@key_app.command("delete")
@edge_errors
def key_delete(
    access_key: str,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete an access key."""
    from opencbr.iam import service as iam

    with admin_session(data_dir, database_url) as (_, session):
        iam.delete_access_key(session, access_key)
    _deleted("access key", access_key, as_json)
