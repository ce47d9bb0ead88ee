"""What every service call needs to know about its caller, and the shared runtime."""

from __future__ import annotations

from dataclasses import dataclass, field

from .db import Database
from .secrets import RootKey
from .settings import Settings

__all__ = ["Actor", "Runtime"]


@dataclass(frozen=True)
class Actor:
    """The acting identity. Every service read is scoped by it, in SQL."""

    domain_id: str
    user_id: str
    project_id: str | None = None
    region: str | None = None


@dataclass
class Runtime:
    """Process-wide parts built once at the edge from the settings."""

    settings: Settings
    database: Database
    root_key: RootKey
    extras: dict[str, object] = field(default_factory=dict)
