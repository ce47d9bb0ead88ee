"""What every service call needs to know about its caller, and the shared runtime."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from .db import Database
from .secrets import RootKey
from .settings import Settings

if TYPE_CHECKING:
    from opencbr.chunkstore import ChunkStore

    from .jobs import WorkerPool

__all__ = ["Actor", "Part", "Parts", "Runtime"]

T = TypeVar("T")


@dataclass(frozen=True)
class Actor:
    """The acting identity. Every service read is scoped by it, in SQL."""

    domain_id: str
    user_id: str
    project_id: str | None = None
    region: str | None = None


class Part(Generic[T]):
    """A typed slot for process-wide state that a slice owns (its volume driver, a hook another
    slice registers): declared in the owning slice, so core holds it without importing it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Part({self.name!r})"


class Parts:
    """The runtime's slice-owned parts, each read and written through its typed `Part`."""

    def __init__(self) -> None:
        self._values: dict[str, object] = {}

    def get(self, part: Part[T]) -> T | None:
        return cast("T | None", self._values.get(part.name))

    def set(self, part: Part[T], value: T) -> None:
        self._values[part.name] = value

    def setdefault(self, part: Part[T], make: Callable[[], T]) -> T:
        """The part's value, made now if it has none (callers hold their own lock)."""
        if part.name not in self._values:
            self._values[part.name] = make()
        return cast("T", self._values[part.name])

    def pop(self, part: Part[T]) -> T | None:
        return cast("T | None", self._values.pop(part.name, None))


@dataclass
class Runtime:
    """Process-wide parts built once at the edge from the settings."""

    settings: Settings
    database: Database
    root_key: RootKey
    chunk_store: ChunkStore | None = None
    """The process's chunk store, opened on first use (`cbr.dataplane.chunk_store`)."""
    store_size: Callable[[], int] | None = None
    """Measures the store's size cheaply, where a store can (read at each metrics scrape)."""
    workers: WorkerPool | None = None
    """The job workers running in this process, if any."""
    parts: Parts = field(default_factory=Parts)
    """What a slice keeps for the process (see `Part`)."""
