"""The entry point for ASGI process managers: one app per process, configured from the environment.

    uvicorn --factory opencbr.api.asgi:create_from_env --workers 4
    gunicorn -k uvicorn.workers.UvicornWorker 'opencbr.api.asgi:create_from_env()'
    uvicorn opencbr.api.asgi:app            # the same, built on first access

Each process reads the settings once here (its edge) and builds its own runtime: database
engine, root key, job workers unless `OPENCBR_RUN_WORKERS=false`. Nothing else is kept in the
process: all shared state is in the database and the object store, so any number of these
processes (and of `opencbr worker`) can serve one deployment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from opencbr.core.context import Runtime
from opencbr.core.logging import configure_logging
from opencbr.core.settings import Settings

from .app import create_app
from .runtime import build_runtime, start_workers

__all__ = ["create_from_env", "create_from_settings"]


def create_from_settings(settings: Settings) -> FastAPI:
    """The app of one API process; its job workers run while the app's lifespan does."""
    if settings.prometheus_multiproc_dir is not None:
        settings.prometheus_multiproc_dir.mkdir(parents=True, exist_ok=True)
    runtime = build_runtime(settings)
    app = create_app(runtime)
    _run_with_lifespan(app, runtime)
    return app


def create_from_env() -> FastAPI:
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_from_settings(settings)


def _run_with_lifespan(app: FastAPI, runtime: Runtime) -> None:
    """Start the job workers (if enabled) with the app; stop them and the engine after it."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        settings = runtime.settings
        pool = None
        if settings.run_workers:
            pool = start_workers(runtime, threads=settings.worker_threads)
        try:
            async with inner(application) as state:
                yield state
        finally:
            if pool is not None:
                pool.stop()
            runtime.database.dispose()

    app.router.lifespan_context = lifespan


_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    # `opencbr.api.asgi:app` for servers that want an attribute: built on first access, not
    # on import, so importing this module reads no environment.
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        _app = create_from_env()
    return _app
