"""Read-only NBD exports of a block source with no disk record (e.g. a backup's blocks read
straight from the store, for a sandbox that parses its filesystems).

The export lives in this process's broker only, under a secret name, until `close`; the
database knows nothing of it, and no other process serves it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from opencbr.core.context import Runtime

from .server import NbdServer, nbd_server

__all__ = ["SourceExport", "open_source_export"]


@dataclass(frozen=True)
class SourceExport:
    server: NbdServer
    name: str
    size: int
    reader: Callable[[int, int], bytes]  # what the export serves, for reads in this process

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def close(self) -> None:
        self.server.broker.remove_source(self.name)


def open_source_export(
    runtime: Runtime, reader: Callable[[int, int], bytes], size: int
) -> SourceExport:
    """Serve `reader(offset, length)` as a read-only export of `size` bytes."""
    server = nbd_server(runtime)
    name = secrets.token_urlsafe(32)
    server.broker.add_source(name, reader, size)
    return SourceExport(server, name, size, reader)
