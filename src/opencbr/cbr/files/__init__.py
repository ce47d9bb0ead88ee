"""File-level restore: browse and download the files inside a disk backup.

* ``service``   — the rules (who may, which backup) and the three reads: list, file, archive.
* ``sessions``  — the appliances of a process, one per (project, backup), reaped when idle.
* ``appliance`` — one backup's filesystems parsed in a libguestfs appliance (the sandbox).
* ``binding``   — Debian's libguestfs binding, and whether KVM or TCG runs the appliance.
* ``paths``     — paths inside a backup, normalised; the names of its filesystems.
"""

from .service import Download, Listing, archive, download, list_files, stop_file_sessions

__all__ = ["Download", "Listing", "archive", "download", "list_files", "stop_file_sessions"]
