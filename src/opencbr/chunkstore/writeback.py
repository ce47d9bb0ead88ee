"""Write-back that starts while a large file is still being written.

With plenty of RAM the kernel starts writing dirty pages back only past
``dirty_background_ratio`` (gigabytes on a 24 GiB host), so a program that writes a disk image
and then calls fsync has the disk idle during the writing and the whole image to write in the
fsync. `EarlyWriteBack` starts an ``fdatasync`` on a thread after every `every` bytes, so the
disk writes beside the producer and the final fsync has little left to do (without it, the
fsync was seconds of a large write: bench/README.md, "Figures behind the code").
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["WRITE_BACK_EVERY", "EarlyWriteBack", "early_write_back"]

WRITE_BACK_EVERY = 64 << 20
"""Bytes written between the flushes (a few hundred milliseconds of disk time)."""


class EarlyWriteBack:
    """Call `wrote(n)` after writing n bytes to `fd`; `close` at the end (or use
    `early_write_back` as a with-block).

    `wrote` may be called from several threads; a lost count under a race only moves a flush.
    Closing does not fsync: the owner still makes the file durable itself.
    """

    def __init__(self, fd: int, every: int | None = None, *, drop_cache: bool = False) -> None:
        self._fd = fd
        self._every = every or WRITE_BACK_EVERY
        self._drop_cache = drop_cache
        self._unflushed = 0
        self._due = threading.Event()
        self._closing = False
        self.flushes = 0
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="write-back", daemon=True)
        self._thread.start()

    def wrote(self, count: int) -> None:
        self._unflushed += count
        if self._unflushed >= self._every:
            self._unflushed = 0
            self._due.set()

    def _run(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            if self._closing:
                return
            try:
                os.fdatasync(self._fd)
                if self._drop_cache:  # only clean pages go: those the flush wrote
                    os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_DONTNEED)
                self.flushes += 1
            except OSError as exc:
                self.error = self.error or exc

    def close(self) -> None:
        """Stop the flusher; raises the error of a failed flush (the data may not be on disk)."""
        self.stop()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Stop the flusher without reporting its errors (the write itself has failed)."""
        self._closing = True
        self._due.set()
        self._thread.join()


@contextmanager
def early_write_back(
    fd: int, every: int | None = None, *, drop_cache: bool = False
) -> Iterator[EarlyWriteBack]:
    """An `EarlyWriteBack` for the with-block: closed at its end (raising a failed flush),
    only stopped when the block raises."""
    write_back = EarlyWriteBack(fd, every, drop_cache=drop_cache)
    try:
        yield write_back
    except BaseException:
        write_back.stop()
        raise
    write_back.close()
