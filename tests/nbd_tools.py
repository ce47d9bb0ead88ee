"""Real NBD clients for tests: Debian's libnbd binding (there is none on PyPI) and the
command-line tools (`qemu-img`, `qemu-io`, `nbdinfo`)."""

from __future__ import annotations

import shutil
import sys
from types import ModuleType

import pytest

DEBIAN_PYTHON = "/usr/lib/python3/dist-packages"
TOOLS = ("nbdkit", "qemu-img", "qemu-io", "nbdinfo")


def libnbd() -> ModuleType:
    """Debian's `nbd` module, importable by appending its directory (last, so that nothing
    else of the system's Python shadows the project's packages)."""
    if DEBIAN_PYTHON not in sys.path:
        sys.path.append(DEBIAN_PYTHON)
    try:
        import nbd  # type: ignore[import-not-found]
    except ImportError:
        pytest.skip("python3-libnbd is not installed (scripts/setup-nbd.sh installs it)")
    return nbd  # type: ignore[no-any-return]


def need_tools(*names: str) -> None:
    missing = [name for name in names or TOOLS if shutil.which(name) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (scripts/setup-nbd.sh installs them)")
