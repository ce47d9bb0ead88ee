"""Service configuration, read once at the edge (CLI or app factory) and passed down."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings"]

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Everything a process needs; every process of one deployment must share these values."""

    model_config = SettingsConfigDict(env_prefix="OPENCBR_", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str | None = None
    regions: Annotated[list[str], NoDecode] = Field(default=["region-1", "region-2"])
    host: str = "127.0.0.1"
    port: int = 8080
    root_key: str | None = Field(
        default=None,
        description="base64 of 32 bytes; when unset a key file in the data directory is used",
    )
    max_body_bytes: int = 12 * MiB
    token_ttl_seconds: int = 24 * 3600
    signature_skew_seconds: int = 15 * 60
    run_workers: bool = Field(
        default=True, description="run job workers in API processes (false: API only)"
    )
    worker_threads: int = Field(default=2, ge=1, description="jobs a process runs at once")
    # A request's work holds the GIL most of the time it runs; threads beyond a few only take
    # turns at it, and past the number of requests in flight they cost throughput and tail
    # latency (bench/README.md, "One hand-off, four request threads"). A request waiting for
    # a row lock holds its thread: raise this where many requests wait on the same rows.
    request_threads: int = Field(
        default=4, ge=1, description="requests an API process works on at once (its threads)"
    )
    # Each check is argon2 with 64 MiB (about a quarter second of a core): a login flood must
    # leave the cores to signed requests (iam.throttle).
    login_checks: int = Field(
        default=1, ge=1, description="password checks an API process runs at once"
    )
    job_lease_seconds: int = Field(
        default=60,
        ge=1,
        description="a claimed job whose worker stops reporting is retried after this long",
    )
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    metrics_enabled: bool = Field(default=True, description="serve Prometheus `/metrics`")
    prometheus_multiproc_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"),
        description="prometheus_client's multi-process directory (it reads the same variable)",
    )
    store_url: str | None = Field(
        default=None,
        description="chunk store: `s3://bucket/prefix`; unset → `store/` in the data directory",
    )
    s3_endpoint: str | None = Field(
        default=None, description="S3 endpoint URL (unset: the AWS default for the region)"
    )
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: str | None = Field(default=None, repr=False)
    admin_token: str | None = Field(
        default=None,
        repr=False,
        description="bearer token of the operator's API (/v1/admin); unset: no such API",
    )
    scrub_period_hours: float = Field(
        default=168.0, ge=0, description="hours between scheduled store scrubs (0: none)"
    )
    scrub_deep: bool = Field(
        default=False, description="scheduled scrubs decrypt and hash every block (slow)"
    )

    nbd_host: str = Field(
        default="127.0.0.1",
        description="address the NBD server listens on; loopback only (exports carry no TLS)",
    )
    nbd_port: int = Field(
        default=0, ge=0, le=65535, description="NBD server port (0: a free port at start)"
    )

    file_browsers: int = Field(
        default=4, ge=1, description="backups whose files a process browses at once"
    )
    file_browser_memory_mib: int = Field(
        default=512, ge=256, description="guest RAM of each file browser's appliance"
    )
    file_browser_idle_seconds: float = Field(
        default=300, gt=0, description="a file browser unused this long is closed"
    )
    file_browser_stall_seconds: float = Field(
        default=60, gt=0, description="a file browser call stalled this long is ended"
    )

    restore_copy_mib_per_s: float = Field(
        default=0,
        ge=0,
        description="rate of a new disk's copy from a backup in MiB/s (0: as fast as it goes)",
    )

    @field_validator("nbd_host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        if not ipaddress.ip_address(value).is_loopback:
            raise ValueError("the NBD server listens on a loopback address only")
        return value

    @field_validator("regions", mode="before")
    @classmethod
    def _split_regions(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def effective_database_url(self) -> str:
        """The configured URL, else the embedded SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'opencbr.db').resolve()}"
