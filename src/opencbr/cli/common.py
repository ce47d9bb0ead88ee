"""Shared CLI plumbing: settings from options, error rendering at the edge."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from opencbr.core.errors import AppError

from .client import ApiError, Client, Profile
from .output import err_console, print_json

if TYPE_CHECKING:  # the server stack loads only for the verbs that use it
    from sqlalchemy.orm import Session

    from opencbr.core.context import Runtime
    from opencbr.core.settings import Settings

__all__ = [
    "DataDirOpt",
    "DatabaseUrlOpt",
    "JsonOpt",
    "admin_session",
    "client",
    "edge_errors",
    "make_settings",
]

P = ParamSpec("P")
R = TypeVar("R")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", envvar="OPENCBR_DATA_DIR", help="Data directory.")
]
DatabaseUrlOpt = Annotated[
    str | None,
    typer.Option("--database-url", envvar="OPENCBR_DATABASE_URL", help="SQLAlchemy database URL."),
]


def make_settings(
    data_dir: Path | None = None, database_url: str | None = None, **extra: Any
) -> Settings:
    from opencbr.core.settings import Settings

    overrides: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    return Settings(**overrides)


@contextmanager
def admin_session(
    data_dir: Path | None, database_url: str | None
) -> Iterator[tuple[Runtime, Session]]:
    """Direct database access for admin verbs (no server needed); one unit of work."""
    from opencbr.api.runtime import build_runtime

    runtime = build_runtime(make_settings(data_dir, database_url))
    try:
        with runtime.database.unit_of_work() as session:
            yield runtime, session
    finally:
        runtime.database.dispose()


def client() -> Client:
    return Client(Profile.load())


def edge_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Render service and API errors once, as a message and the error's exit code.

    With `--json` (a verb's `as_json` parameter) the error is a JSON object on stdout instead,
    `{"error_code": ..., "error_msg": ...}` like the API's error bodies, with the same exit
    code, so that scripts parse one stream whatever the outcome."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("as_json"))
        try:
            return func(*args, **kwargs)
        except AppError as exc:
            _print_error(as_json, exc.code, exc.message)
            raise typer.Exit(exc.exit_code) from exc
        except ApiError as exc:
            _print_error(as_json, exc.code, exc.message, exc.request_id)
            raise typer.Exit(4 if exc.status == 404 else 1) from exc

    return wrapper


def _print_error(as_json: bool, code: str, message: str, request_id: str = "") -> None:
    if as_json:
        error = {"error_code": code, "error_msg": message}
        print_json({**error, "request_id": request_id} if request_id else error)
        return
    suffix = f" (request {request_id})" if request_id else ""
    err_console.print(f"[red]error[/red] {code}: {message}{suffix}")
