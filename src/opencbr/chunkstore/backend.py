"""Storage backends: a narrow protocol over immutable named objects, and two implementations.

The protocol is deliberately small (put, get with an optional byte range, list by prefix,
delete, exists) so that an object store (S3 and its relatives) implements it directly. Names
are ``/``-separated relative paths such as ``packs/ab/ab12…``. Objects are immutable: a name is
written once; writing the same name again is allowed only with the same bytes (content-named
objects), and the chunk store never relies on overwriting.

Contracts every backend keeps:

* ``put`` is atomic: a reader sees the whole object or no object, never a prefix.
* ``put`` is durable when it returns (the local backend fsyncs the file and its directory).
* ``list`` after a completed ``put`` or ``delete`` reflects it (read-after-write; S3 gives this).
* ``get`` of a missing name raises `MissingObject`; a range past the end returns what exists
  (callers check lengths, so a truncated object is reported, never padded).
* ``delete`` of a missing name is not an error (deletes are retried after crashes).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from .errors import MissingObject

__all__ = ["PRIVATE_FILE", "Backend", "LocalDirBackend", "MemoryBackend"]

_TMP_PREFIX = ".tmp-"


@runtime_checkable
class Backend(Protocol):
    """Where the chunk store keeps its objects (see the module docstring for the contracts)."""

    def put(self, name: str, data: bytes) -> None:
        """Store `data` under `name`, atomically and durably."""

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """The object's bytes, or `length` bytes from `offset` (fewer at the end)."""

    def list(self, prefix: str) -> Iterator[str]:
        """Names that start with `prefix`, in no particular order."""

    def delete(self, name: str) -> None:
        """Remove `name`; a missing name is not an error."""

    def exists(self, name: str) -> bool:
        """Whether `name` is stored."""


def _check_name(name: str) -> None:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object name {name!r}")
    if parts[-1].startswith(_TMP_PREFIX):
        raise ValueError(f"invalid object name {name!r}")


class MemoryBackend:
    """Objects in a dict: for tests, and for stores that live as long as the process."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, name: str, data: bytes) -> None:
        _check_name(name)
        with self._lock:
            self.objects[name] = bytes(data)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._lock:
            data = self.objects.get(name)
        if data is None:
            raise MissingObject(name)
        end = len(data) if length is None else offset + length
        return data[offset:end]

    def list(self, prefix: str) -> Iterator[str]:
        with self._lock:
            names = [n for n in self.objects if n.startswith(prefix)]
        return iter(names)

    def delete(self, name: str) -> None:
        with self._lock:
            self.objects.pop(name, None)

    def exists(self, name: str) -> bool:
        with self._lock:
            return name in self.objects


PRIVATE_FILE = 0o600
"""The mode of every file the store writes (the umask only ever narrows it)."""
PRIVATE_DIRECTORY = 0o700


def _private_directory(path: Path) -> None:
    """Make `path` and each missing parent 0700 (`mkdir(parents=True)` gives the parents it
    makes the default mode)."""
    missing: list[Path] = []
    for each in (path, *path.parents):
        if each.exists():
            break
        missing.append(each)
    for each in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another writer
            os.mkdir(each, PRIVATE_DIRECTORY)


class LocalDirBackend:
    """Objects as files under a directory; writes go to a temp file, fsync, rename, fsync dir."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        _private_directory(self.root)

    def _path(self, name: str) -> Path:
        _check_name(name)
        return self.root / name

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        _private_directory(path.parent)
        tmp = path.parent / f"{_TMP_PREFIX}{os.urandom(16).hex()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            fd = os.open(self._path(name), os.O_RDONLY)
        except FileNotFoundError:
            raise MissingObject(name) from None
        try:
            if length is None:
                length = max(0, os.fstat(fd).st_size - offset)
            return _pread_all(fd, length, offset)
        finally:
            os.close(fd)

    def list(self, prefix: str) -> Iterator[str]:
        base, _, _ = prefix.rpartition("/")
        start = self.root / base if base else self.root
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for filename in sorted(filenames):
                if filename.startswith(_TMP_PREFIX):
                    continue
                name = filename if rel == "." else f"{rel}/{filename}"
                if name.startswith(prefix):
                    yield name

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()


def _pread_all(fd: int, length: int, offset: int) -> bytes:
    chunks = []
    while length > 0:
        chunk = os.pread(fd, length, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
