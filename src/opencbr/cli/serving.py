"""Running the service: the API processes, job workers and the demo tenants of the embedded
default. Imported by `opencbr serve` and `opencbr worker` only, so that the other verbs start
without the server stack."""

from __future__ import annotations

import functools
import json
import os
import secrets
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, ParamSpec

import typer
import uvicorn
from prometheus_client import start_http_server
from sqlalchemy.orm import Session

from opencbr.api.app import create_app
from opencbr.api.runtime import build_runtime, start_workers
from opencbr.chunkstore.errors import ChunkStoreError
from opencbr.core.context import Runtime
from opencbr.core.errors import AppError
from opencbr.core.files import private_directory
from opencbr.core.logging import configure_logging, logging_config
from opencbr.core.metrics import MetricsExposition
from opencbr.core.secrets import SealedDataCorrupt
from opencbr.core.settings import Settings
from opencbr.evs.nbd import nbd_server
from opencbr.iam import service as iam
from opencbr.iam.errors import DomainNotFound

from .output import console, err_console

__all__ = [
    "DEMO_CREDENTIALS_FILE",
    "DEMO_TENANTS",
    "ensure_demo_tenants",
    "run_server",
    "run_worker",
]

DEMO_TENANTS = ("demo-alice", "demo-bob")
DEMO_CREDENTIALS_FILE = "demo-credentials.json"

P = ParamSpec("P")


def ensure_demo_tenants(runtime: Runtime) -> dict[str, Any]:
    """The demo tenants and working credentials for them, saved in
    `<data>/demo-credentials.json` (mode 0600).

    The file and the database can drift apart (one deleted, the other kept). Start-up checks
    the saved access keys against the database (a few primary-key reads, no password hashing)
    and repairs what no longer matches: a missing tenant is created; an existing one keeps its
    domain, projects and user and gets a new access key (and any project or user it lost).
    The file is rewritten only when something changed, after the database commit."""
    path = runtime.settings.data_dir / DEMO_CREDENTIALS_FILE
    saved = _read_saved(path)
    tenants: dict[str, Any] = {}
    changed = False
    with runtime.database.unit_of_work() as session:
        for name in DEMO_TENANTS:
            entry = saved.get(name)
            if isinstance(entry, dict) and _still_valid(session, runtime, name, entry):
                tenants[name] = entry
                continue
            tenants[name] = _reconcile(session, runtime, name, entry)
            changed = True
    if changed or not path.exists():
        _write_private(path, tenants)
    elif path.stat().st_mode & 0o777 != 0o600:
        path.chmod(0o600)
    return tenants


def _read_saved(path: Path) -> dict[str, Any]:
    """The saved credentials, or nothing when the file is missing or unreadable."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def _demo_projects(session: Session, runtime: Runtime, domain_id: str) -> dict[str, str]:
    """The domain's built-in project (named after its region) in each configured region."""
    regions = runtime.settings.regions
    return {
        p.region: p.id
        for p in iam.list_projects(session, domain_id)
        if p.region in regions and p.name == p.region
    }


def _still_valid(session: Session, runtime: Runtime, name: str, entry: dict[str, Any]) -> bool:
    """Whether the saved access key still resolves, to this tenant, with the saved secret."""
    try:
        secret, principal = iam.resolve_access_key(session, runtime.root_key, entry["access_key"])
    except (KeyError, TypeError, AppError, SealedDataCorrupt):
        return False
    projects = _demo_projects(session, runtime, principal.domain_id)
    return (
        secret == entry.get("secret_key")
        and principal.domain_id == entry.get("domain_id")
        and principal.user_name == name == entry.get("user_name")
        and set(projects) == set(runtime.settings.regions)
        and projects == entry.get("projects")
    )


def _reconcile(
    session: Session, runtime: Runtime, name: str, entry: dict[str, Any] | None
) -> dict[str, Any]:
    """Create the tenant, or give the existing one what it lacks, a new access key and, when
    its password was only in the lost file, a new password."""
    settings = runtime.settings
    try:
        domain = iam.domain_by_name(session, name)
    except DomainNotFound:
        creds = iam.create_tenant(
            session, runtime.root_key, settings.regions, name, settings.regions
        )
        return asdict(creds)
    projects = _demo_projects(session, runtime, domain.id)
    for region in settings.regions:
        if region not in projects:
            projects[region] = iam.create_project(session, domain.id, region, settings.regions).id
    user = next((u for u in iam.list_users(session, domain.id) if u.name == name), None)
    password = entry.get("password") if entry and entry.get("domain_id") == domain.id else None
    if user is None:
        password = secrets.token_urlsafe(12)
        user = iam.create_user(session, domain.id, name, password)
    elif not password:
        # Only a hash is stored and the file that held the password is gone: a demo user
        # simply gets a new one.
        password = secrets.token_urlsafe(12)
        iam.set_password(session, user, password)
    access_key, secret_key = iam.create_access_key(session, runtime.root_key, user.id)
    return {  # the fields of iam.TenantCredentials; the password may be unknown (None)
        "domain_id": domain.id,
        "domain_name": domain.name,
        "projects": projects,
        "user_name": name,
        "password": password,
        "access_key": access_key,
        "secret_key": secret_key,
    }


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Replace the file atomically with a new one that only its owner can read."""
    private_directory(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _print_demo(tenants: dict[str, Any], endpoint: str, path: Path) -> None:
    console.print(f"[bold]Demo tenants[/bold] (saved in {path}):")
    for name, creds in tenants.items():
        projects = ", ".join(f"{r}={p}" for r, p in creds["projects"].items())
        console.print(
            f"  [cyan]{name}[/cyan] account {creds['domain_id']}  user {creds['user_name']} / "
            f"{creds['password']}\n    AK {creds['access_key']}  SK {creds['secret_key']}\n"
            f"    projects {projects}"
        )
    first = next(iter(tenants.values()))
    console.print(
        "Try it:\n"
        f"  export OPENCBR_ENDPOINT={endpoint} OPENCBR_ACCESS_KEY={first['access_key']} "
        f"OPENCBR_SECRET_KEY={first['secret_key']} "
        f"OPENCBR_PROJECT_ID={next(iter(first['projects'].values()))}\n"
        "  uv run opencbr whoami        # in this checkout; `opencbr whoami` where it is installed"
    )


# sysexits EX_CONFIG; the systemd units in deploy/ do not restart on it (no crash loop).
EXIT_CONFIG = 78


def _configuration_errors(func: Callable[P, None]) -> Callable[P, None]:
    """A store that cannot be used as configured (S3 endpoint, credentials, bucket: checked
    once at start) ends the command with one clear line and the configuration exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            func(*args, **kwargs)
        except ChunkStoreError as exc:
            err_console.print(f"[red]error[/red] {exc.code}: {exc.message}")
            raise typer.Exit(EXIT_CONFIG) from exc

    return wrapper


@_configuration_errors
def run_server(settings: Settings, workers: int, demo: bool) -> None:
    """Migrate, optionally create the demo tenants, then serve in one or `workers` processes."""
    configure_logging(settings.log_format, settings.log_level)
    # Migrate and create the root key file once, before any API process starts.
    runtime = build_runtime(settings)
    endpoint = f"http://{settings.host}:{settings.port}"
    if demo:
        path = settings.data_dir / DEMO_CREDENTIALS_FILE
        _print_demo(ensure_demo_tenants(runtime), endpoint, path)
    mode = "with job workers" if settings.run_workers else "API only"
    console.print(
        f"OpenCBR listening on [bold]{endpoint}[/bold] (console: {endpoint}/console), "
        f"{workers} process{'es' if workers > 1 else ''}, {mode}"
    )
    uvicorn_options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": logging_config(settings.log_format, settings.log_level),
        "access_log": False,
    }
    if workers == 1:
        _serve_in_process(runtime, uvicorn_options)
        return
    runtime.database.dispose()
    with _environment_for_processes(settings) as multiproc_dir:
        if multiproc_dir is not None:
            console.print(f"metrics of all processes are summed in {multiproc_dir}")
        uvicorn.run(
            "opencbr.api.asgi:create_from_env", factory=True, workers=workers, **uvicorn_options
        )


def _start_nbd(runtime: Runtime) -> None:
    """The NBD server starts with the process where nbdkit is installed (else on first use,
    which then fails naming the packages)."""
    try:
        server = nbd_server(runtime)
    except AppError as exc:
        console.print(f"NBD export unavailable: {exc.message}")
        return
    uri = (
        f"nbds://{server.address}/ ({server.tls} TLS)" if server.tls else f"nbd://{server.address}/"
    )
    console.print(
        f"NBD server on [bold]{server.host}:{server.port}[/bold], exports at {uri} (disk nbd open)"
    )


def _serve_in_process(runtime: Runtime, uvicorn_options: dict[str, Any]) -> None:
    settings = runtime.settings
    if settings.nbd_embedded:
        _start_nbd(runtime)
    pool = start_workers(runtime, threads=settings.worker_threads) if settings.run_workers else None
    try:
        uvicorn.run(create_app(runtime), **uvicorn_options)
    finally:
        if pool is not None:
            pool.stop()
        runtime.database.dispose()


@contextmanager
def _environment_for_processes(settings: Settings) -> Iterator[Path | None]:
    """Pass the settings this command resolved to the API processes (which read the
    environment), and give them a shared metrics directory unless one is configured."""
    exported = {
        "OPENCBR_DATA_DIR": str(settings.data_dir.resolve()),
        "OPENCBR_RUN_WORKERS": "true" if settings.run_workers else "false",
        "OPENCBR_NBD_EMBEDDED": "true" if settings.nbd_embedded else "false",
    }
    if settings.database_url:
        exported["OPENCBR_DATABASE_URL"] = settings.database_url
    temporary = None
    multiproc_dir = settings.prometheus_multiproc_dir
    if multiproc_dir is None and settings.metrics_enabled:
        temporary = tempfile.TemporaryDirectory(prefix="opencbr-metrics-")
        multiproc_dir = Path(temporary.name)
        exported["PROMETHEUS_MULTIPROC_DIR"] = temporary.name
    os.environ.update(exported)
    try:
        yield multiproc_dir
    finally:
        if temporary is not None:
            temporary.cleanup()


@_configuration_errors
def run_worker(settings: Settings, metrics_port: int | None, metrics_host: str) -> None:
    """Run job workers until SIGTERM or Ctrl-C; running jobs finish first."""
    configure_logging(settings.log_format, settings.log_level)
    runtime = build_runtime(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if metrics_port is not None:
        exposition = MetricsExposition(
            runtime.database, multiproc_dir=settings.prometheus_multiproc_dir
        )
        start_http_server(metrics_port, metrics_host, registry=exposition.registry)
    pool = start_workers(runtime, threads=settings.worker_threads)
    url = runtime.database.engine.url.render_as_string(hide_password=True)
    console.print(f"worker {pool.name} started ({settings.worker_threads} threads) on {url}")
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    console.print(f"worker {pool.name} stopping (running jobs finish first)")
    pool.stop()
    runtime.database.dispose()
    console.print("worker stopped")
