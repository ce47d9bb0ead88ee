"""Files and directories the service creates under its data directory: readable by its own
user only (0600 and 0700), whatever the umask.

A mode given to `open` or `mkdir` is only ever narrowed by the umask, so asking for 0600/0700
holds under any umask; `Path.mkdir(parents=True)` would give the parents it makes the default
mode instead, hence `private_directory`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["PRIVATE_DIRECTORY", "PRIVATE_FILE", "private_directory", "private_file"]

PRIVATE_FILE = 0o600
PRIVATE_DIRECTORY = 0o700


def private_directory(path: Path) -> None:
    """Make `path` and each missing parent, each 0700; an existing one is left as it is."""
    missing: list[Path] = []
    for each in (path, *path.parents):
        if each.exists():
            break
        missing.append(each)
    for each in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            os.mkdir(each, PRIVATE_DIRECTORY)


def private_file(path: Path) -> None:
    """Create `path` empty, 0600, if it does not exist; narrow it to 0600 if it does (a file
    made by an earlier version under a permissive umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        if os.fstat(fd).st_mode & 0o777 != PRIVATE_FILE:
            os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
