"""Progress on stderr: a live bar on a terminal, one line every few seconds elsewhere.

Scripted runs (cron, CI, a pipe into a log) have no terminal, where a live bar draws nothing;
their logs still need to show that long work is moving, so there each task prints a line
such as `backup: 42%` at most every `interval` seconds, and once when it ends.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NewType, Protocol

from .output import err_console, real_console

if TYPE_CHECKING:
    from rich.progress import ProgressColumn
    from rich.progress import TaskID as TaskID
else:
    TaskID = NewType("TaskID", int)  # Rich's own definition; Rich loads only for a live bar

__all__ = ["LineProgress", "ProgressLike", "progress"]


class ProgressLike(Protocol):
    def __enter__(self) -> ProgressLike: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any: ...

    def add_task(self, description: str, *, total: float | None) -> TaskID: ...

    def update(self, task_id: TaskID, *, completed: float | None = None) -> None: ...

    def advance(self, task_id: TaskID, advance: float) -> None: ...


class LineProgress:
    """The same calls as Rich's `Progress`, printed as occasional plain lines."""

    def __init__(self, interval: float = 5.0) -> None:
        self._interval = interval
        self._tasks: dict[TaskID, list[Any]] = {}  # description, total, completed, last print

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            for task_id in self._tasks:
                self._print(task_id)

    def add_task(self, description: str, *, total: float | None) -> TaskID:
        task_id = TaskID(len(self._tasks))
        self._tasks[task_id] = [description, total, 0.0, time.monotonic()]
        return task_id

    def update(self, task_id: TaskID, *, completed: float | None = None) -> None:
        if completed is not None:
            self._tasks[task_id][2] = completed
            self._maybe_print(task_id)

    def advance(self, task_id: TaskID, advance: float) -> None:
        self._tasks[task_id][2] += advance
        self._maybe_print(task_id)

    def _maybe_print(self, task_id: TaskID) -> None:
        if time.monotonic() - self._tasks[task_id][3] >= self._interval:
            self._print(task_id)

    def _print(self, task_id: TaskID) -> None:
        description, total, completed, _ = self._tasks[task_id]
        percent = 100.0 * completed / total if total else 100.0
        err_console.print(f"{description}: {min(100.0, percent):.0f}%", highlight=False)
        self._tasks[task_id][3] = time.monotonic()


def progress(unit: Literal["bytes", "steps"]) -> ProgressLike:
    """A bar on a terminal (bytes: size, speed and time left; steps: percent and time
    spent), periodic lines on anything else."""
    if not err_console.is_terminal:
        return LineProgress()
    from rich import progress as rich

    columns: list[str | ProgressColumn] = ["[progress.description]{task.description}"]
    columns.append(rich.BarColumn())
    if unit == "bytes":
        columns += [rich.DownloadColumn(), rich.TransferSpeedColumn(), rich.TimeRemainingColumn()]
    else:
        columns += [rich.TaskProgressColumn(), rich.TimeElapsedColumn()]
    return rich.Progress(*columns, console=real_console(err_console), transient=True)
