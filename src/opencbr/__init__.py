"""OpenCBR: self-hosted Cloud Backup and Recovery with backup sharing."""

__version__ = "0.1.0"
