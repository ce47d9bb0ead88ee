"""The `opencbr` command."""

from __future__ import annotations

import typer

from .account import configure, whoami
from .admin import admin_app
from .backup import backup_app, job_app, oplog_app, restore
from .backup_files import files_app
from .disk import disk_app
from .disk_external import register as _register_external  # noqa: F401  (adds `disk register`)
from .disk_history import bin_app as _bin_app  # noqa: F401  (adds `disk extend`, `snapshot`, `bin`)
from .errors_cmd import errors
from .kms import kms_app
from .nbd import disk_nbd_app, server_nbd_app
from .nbd_serve import nbd_app
from .policy import policy_app
from .recovery import store_app
from .schema import db_app
from .server import serve, worker
from .server_cmds import server_app
from .share import share_app, shared_app
from .vault import vault_app

__all__ = ["app"]

app = typer.Typer(
    help="OpenCBR: self-hosted Cloud Backup and Recovery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(serve)
app.command()(worker)
app.command()(configure)
app.command()(whoami)
app.command()(errors)
backup_app.add_typer(files_app, name="files")
app.add_typer(admin_app, name="admin")
app.add_typer(db_app, name="db")
app.add_typer(kms_app, name="kms")
app.add_typer(share_app, name="share")
app.add_typer(shared_app, name="shared-with-me")
app.add_typer(policy_app, name="policy")
disk_app.add_typer(disk_nbd_app, name="nbd")
server_app.add_typer(server_nbd_app, name="nbd")
app.add_typer(disk_app, name="disk")
app.add_typer(server_app, name="server")
app.add_typer(vault_app, name="vault")
app.add_typer(backup_app, name="backup")
app.command()(restore)
app.add_typer(oplog_app, name="oplog")
app.add_typer(job_app, name="job")
app.add_typer(store_app, name="store")
app.add_typer(nbd_app, name="nbd")
