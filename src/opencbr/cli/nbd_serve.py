"""`opencbr nbd serve`: the NBD server (nbdkit and its broker) as a process of its own.

For scale-out: API processes run without one (`opencbr serve --no-nbd`, or
`OPENCBR_NBD_EMBEDDED=false`) and name, in the exports they open, a running server of the
deployment (it registers itself in the shared database; `evs.nbd.registry`). Its settings
(data directory, database, root key, store) are the deployment's, as for `opencbr worker`.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from .common import DatabaseUrlOpt, DataDirOpt, edge_errors, make_settings
from .output import console

__all__ = ["nbd_app"]

nbd_app = typer.Typer(help="The NBD server as a process of its own.", no_args_is_help=True)


@nbd_app.command("serve")
@edge_errors
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            help="Listen address; other than loopback only with TLS (env OPENCBR_NBD_HOST)."
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Listen port (env OPENCBR_NBD_PORT; 0: a free one)."),
    ] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Serve the deployment's NBD exports until SIGTERM or Ctrl-C."""
    from opencbr.api.runtime import build_runtime
    from opencbr.core.logging import configure_logging
    from opencbr.evs.nbd import nbd_server, stop_nbd_server

    settings = make_settings(
        data_dir, database_url, nbd_host=host, nbd_port=port, run_workers=False
    )
    configure_logging(settings.log_format, settings.log_level)
    runtime = build_runtime(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server = nbd_server(runtime)
        server.registration.wait_registered()  # API processes find it from now on
        tls = f", {server.tls} TLS" if server.tls else ""
        console.print(
            f"NBD server on [bold]{server.host}:{server.port}[/bold], exports at "
            f"{'nbds' if server.tls else 'nbd'}://{server.address}/{tls}"
        )
        while not stop.wait(1.0):
            if not server.running():
                server = nbd_server(runtime)  # nbdkit died: another takes its place
    except KeyboardInterrupt:
        pass
    finally:
        stop_nbd_server(runtime)
        runtime.database.dispose()
    console.print("NBD server stopped")
