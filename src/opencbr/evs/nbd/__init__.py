"""NBD export of disks: nbdkit speaks the protocol, the volume layer does the I/O.

* ``exports``       — the rules: open and close a disk's (or a server's disks') export.
* ``lookup``        — an export by its secret name (what the broker resolves).
* ``server``        — this process's NBD server: nbdkit with our plugin, and the broker.
* ``broker``        — carries the plugin's requests out on the volume layer.
* ``sources``       — read-only exports of a block source with no disk record.
* ``wire``          — the plugin-broker control protocol (standard library only).
* ``nbdkit_plugin`` — the plugin, run by nbdkit's interpreter (never imported here).
"""

from .exports import (
    ExportView,
    close_export,
    close_server_exports,
    open_export,
    open_server_exports,
    show_export,
)
from .server import NbdServer, nbd_server, stop_nbd_server
from .sources import SourceExport, open_source_export

__all__ = [
    "ExportView",
    "NbdServer",
    "SourceExport",
    "close_export",
    "close_server_exports",
    "nbd_server",
    "open_export",
    "open_server_exports",
    "open_source_export",
    "show_export",
    "stop_nbd_server",
]
