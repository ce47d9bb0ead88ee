"""Let a process keep the large buffers it frees, for the next ones (glibc only).

Backups and restores allocate and free large buffers all the time: each batch read from a
disk (up to a few MiB), each block's compressed and sealed blob, each pack (16 MiB). With
glibc's defaults, an allocation above the mmap threshold (128 KiB at start, raised only as
mapped chunks are freed) gets a fresh mapping, and memory above the trim threshold is handed
back to the kernel when it is freed. So most new buffers fault their pages in again one by
one, each page zeroed by the kernel first. Both thresholds go to 32 MiB (the largest mmap
threshold glibc accepts on 64-bit systems; a pack is slightly larger than 16 MiB), which cuts
the page faults and CPU of a backup by about a third (bench/README.md, "Figures behind the
code").

The cost is that up to 32 MiB freed at the top of each malloc arena stays in the process.
"""

from __future__ import annotations

import ctypes

__all__ = ["keep_freed_buffers"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
THRESHOLD = 32 * 1024 * 1024


def keep_freed_buffers() -> bool:
    """Set glibc's mmap and trim thresholds for this process; False where malloc is not
    glibc's (the call changes nothing there). Call it once in a process that runs jobs."""
    libc = ctypes.CDLL(None)  # the symbols the process has loaded, the C library's among them
    mallopt = getattr(libc, "mallopt", None)
    gnu_version = getattr(libc, "gnu_get_libc_version", None)
    if mallopt is None or gnu_version is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, THRESHOLD))
