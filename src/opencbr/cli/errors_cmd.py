"""`opencbr errors`: the error catalogue, generated from the error classes themselves."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from opencbr.core.errors import all_error_classes

from .common import JsonOpt
from .output import print_rows

__all__ = ["catalogue", "errors", "markdown_table"]


def catalogue() -> list[dict[str, object]]:
    """One row per distinct error code, from every slice's error classes."""
    from opencbr.api.runtime import SLICES

    for name in SLICES:
        for module in ("errors", "routes"):
            try:
                importlib.import_module(f"opencbr.{name}.{module}")
            except ModuleNotFoundError:
                continue
    importlib.import_module("opencbr.api.app")
    rows: dict[tuple[str, int], dict[str, object]] = {}
    for cls in all_error_classes():
        key = (cls.code, cls.status)
        rows.setdefault(
            key,
            {
                "code": cls.code,
                "status": cls.status,
                "exit_code": cls.exit_code,
                "name": cls.__name__,
                "message": cls.template,
            },
        )
    return [rows[k] for k in sorted(rows)]


def markdown_table() -> str:
    lines = ["| HTTP | code | CLI exit | error | message |", "| --- | --- | --- | --- | --- |"]
    for row in catalogue():
        message = str(row["message"]).replace("|", "\\|")
        cells = [str(row["status"]), f"`{row['code']}`", str(row["exit_code"]), str(row["name"])]
        lines.append("| " + " | ".join([*cells, message]) + " |")
    return "\n".join(lines) + "\n"


def errors(
    as_json: JsonOpt = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the table as Markdown.")
    ] = False,
) -> None:
    """List every error code the API and CLI can answer, with its HTTP status and exit code."""
    if markdown:
        print(markdown_table(), end="")
        return
    print_rows(catalogue(), ["status", "code", "exit_code", "name", "message"], as_json)
