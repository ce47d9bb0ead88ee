"""Freed buffers stay in the process for the next ones (glibc's malloc)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

CYCLES = textwrap.dedent(
    """
    import os, resource, sys
    from opencbr.chunkstore import keep_freed_buffers

    if sys.argv[1] == "keep":
        assert keep_freed_buffers()
    blobs = [os.urandom(1 << 16)] * 280

    def cycle():  # a pack of 17.5 MiB and three 4 MiB reads, then all freed
        pack = b"".join(blobs)
        reads = [os.urandom(1 << 22) for _ in range(3)]
        del pack, reads

    cycle()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        cycle()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def page_faults_after_the_first_cycle(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CYCLES, mode], check=True, capture_output=True, text=True
    )
    return int(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_buffers_freed_are_reused_without_faulting_pages_in_again() -> None:
    assert page_faults_after_the_first_cycle("keep") < 100
    # What the defaults do with the same allocations: most pages are handed back and fault in.
    assert page_faults_after_the_first_cycle("default") > 1000
