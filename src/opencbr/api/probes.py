"""The probes of a process manager or load balancer: `/healthz` (the process serves requests:
liveness) and `/readyz` (it can do its work: the database and the store answer)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from opencbr.cbr.dataplane import chunk_store
from opencbr.core.context import Runtime

__all__ = ["add_probes"]

log = logging.getLogger(__name__)


def add_probes(app: FastAPI, runtime: Runtime) -> None:
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        checks = {"database": _check(_database_answers, runtime)}
        checks["store"] = _check(_store_answers, runtime)
        ready = all(result == "ok" for result in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)


def _check(probe: Any, runtime: Runtime) -> str:
    """ "ok", or "unavailable" (the reason goes to the log, not to an unauthenticated caller)."""
    try:
        if probe(runtime):
            return "ok"
        log.warning("readiness: %s answered but is not usable", probe.__name__)
    except Exception:
        log.warning("readiness: %s failed", probe.__name__, exc_info=True)
    return "unavailable"


def _database_answers(runtime: Runtime) -> bool:
    # The read-only engine: on SQLite it does not take the write lock.
    with runtime.database.read_engine.connect() as connection:
        return connection.execute(text("SELECT 1")).scalar() == 1


def _store_answers(runtime: Runtime) -> bool:
    return chunk_store(runtime).answers()
