"""OpenCBR: self-hosted Cloud Backup and Recovery with backup sharing."""

from importlib.metadata import version

__version__ = version("opencbr")  # written once, in pyproject.toml
