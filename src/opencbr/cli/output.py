"""Printing results the same way everywhere: Rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = [
    "console",
    "err_console",
    "print_json",
    "print_new_id",
    "print_page_note",
    "print_record",
    "print_rows",
]

READABLE = 10
_ID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}|[0-9a-f]{32}|[0-9a-f]{64}")


class LazyConsole:
    """A Rich console made on first use. Importing Rich costs a command ~0.15 s of start-up,
    and a data verb that succeeds without a terminal prints nothing through it."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def made(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.made(), name)


def real_console(shown: Console) -> Console:
    """The Rich console behind `shown` (for Rich classes that take a console)."""
    return shown.made() if isinstance(shown, LazyConsole) else shown


console = cast("Console", LazyConsole(soft_wrap=True))
err_console = cast("Console", LazyConsole(stderr=True, soft_wrap=True))


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
    cells = [["" if row.get(c) is None else str(row.get(c)) for c in columns] for row in rows]
    # Columns come in the order of their importance. Ids are never cut, and other columns
    # wrap down to a readable width; when that is still too wide, the last column goes.
    shown = list(range(len(columns)))
    while len(shown) > 1 and sum(_min_width(columns, cells, i) + 3 for i in shown) >= console.width:
        shown.pop()
    kept = [[row[i] for i in shown] for row in cells]
    console.print(_table(title, [columns[i] for i in shown], kept))


def print_page_note(shown: int, offset: int, total: int) -> None:
    """Under a page of a listing: which rows these are of how many, and how to get the next."""
    if total == 0:
        console.print("none found", highlight=False)
        return
    first, last = offset + 1, offset + shown
    note = f"{first}-{last} of {total}" if shown else f"none past {offset} of {total}"
    if offset + shown < total:
        note += f"; next page: --offset {offset + shown} (and --limit)"
    console.print(note, highlight=False)


def print_new_id(kind: str, new_id: str) -> None:
    """After a create: the new object's id on a line of its own, whole, easy to copy."""
    console.print(f"{kind} id: {new_id}", highlight=False)


def _is_id_column(cells: Sequence[Sequence[str]], index: int) -> bool:
    values = [row[index] for row in cells if row[index]]
    return bool(values) and all(_ID.fullmatch(v) for v in values)


def _min_width(columns: Sequence[str], cells: Sequence[Sequence[str]], index: int) -> int:
    widest = max([len(columns[index]), *(len(row[index]) for row in cells)])
    return widest if _is_id_column(cells, index) else min(widest, READABLE)


def _table(title: str | None, columns: Sequence[str], cells: Sequence[Sequence[str]]) -> Table:
    """A table whose id columns never wrap or shorten; other columns wrap when narrow, down
    to a width that still reads (`READABLE`)."""
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for index, column in enumerate(columns):
        width = _min_width(columns, cells, index)
        if _is_id_column(cells, index):
            table.add_column(column, no_wrap=True, min_width=width)
        else:
            table.add_column(column, overflow="fold", min_width=width)
    for row in cells:
        table.add_row(*row)
    return table


def print_record(record: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(record)
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in record.items():
        shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
        table.add_row(key, "" if shown is None else str(shown))
    console.print(table)
