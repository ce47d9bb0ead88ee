"""What every backup view does when a `with` block leaves it (see `protocol.BackupView`)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["AbortsOnExit"]


class AbortsOnExit:
    """A backup view as a context manager: left before its commit or abort, it aborts (its
    changes go back to the volume's map), so an error never loses them."""

    closed: bool

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.closed:
            self.abort()
