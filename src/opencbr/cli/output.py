"""Printing results the same way everywhere: Rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["console", "err_console", "print_json", "print_record", "print_rows"]

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def print_rows(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    as_json: bool,
    title: str | None = None,
) -> None:
    if as_json:
        print_json(list(rows))
        return
    table = Table(title=title, header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(table)


def print_record(record: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(record)
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in record.items():
        shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
        table.add_row(key, "" if shown is None else str(shown))
    console.print(table)
