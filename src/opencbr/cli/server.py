"""`opencbr serve` and `opencbr worker`: their options; the work is in `serving`."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import DatabaseUrlOpt, DataDirOpt, edge_errors, make_settings

__all__ = ["serve", "worker"]


@edge_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
    nbd_port: Annotated[
        int | None,
        typer.Option(
            "--nbd-port",
            min=0,
            max=65535,
            help="NBD server port [env OPENCBR_NBD_PORT, default 0: a free port].",
        ),
    ] = None,
    nbd: Annotated[
        bool | None,
        typer.Option(
            "--nbd/--no-nbd",
            help="Run the NBD server in the API processes (--no-nbd: `opencbr nbd serve` runs "
            "it) [env OPENCBR_NBD_EMBEDDED, default on].",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Create demo tenants and print them.")
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="API processes (each a uvicorn worker).")
    ] = 1,
    jobs: Annotated[
        bool | None,
        typer.Option(
            "--jobs/--no-jobs",
            help="Run job workers in the API processes [env OPENCBR_RUN_WORKERS, default on].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the API and console, with job workers unless --no-jobs; one process or --workers N."""
    from .serving import run_server

    run_server(
        make_settings(
            data_dir,
            database_url,
            host=host,
            port=port,
            nbd_port=nbd_port,
            nbd_embedded=nbd,
            run_workers=jobs,
        ),
        workers,
        demo,
    )


@edge_errors
def worker(
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    threads: Annotated[
        int | None, typer.Option(help="Jobs run at once [env OPENCBR_WORKER_THREADS, default 2].")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics of this process on this port (all hosts)."),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address for --metrics-port.")] = "0.0.0.0",
) -> None:
    """Run job workers against the shared database and object store until SIGTERM or Ctrl-C."""
    from .serving import run_worker

    run_worker(
        make_settings(data_dir, database_url, worker_threads=threads), metrics_port, metrics_host
    )
