"""OpenCBR: self-hosted Cloud Backup and Recovery with backup sharing."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """`__version__` is read from the installed metadata on first use: importing
    `importlib.metadata` costs every command's start-up ~50 ms."""
    if name == "__version__":
        from importlib.metadata import version

        return version("opencbr")  # written once, in pyproject.toml
    raise AttributeError(name)
