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

    data_dir: Path = Field(
        default=Path("data"),
        description="data directory (SQLite file, disk images, backup store, root key); what the"
        " service creates in it is its user's alone (files 0600, directories 0700), whatever"
        " the umask",
    )
    database_url: str | None = Field(
        default=None,
        description="e.g. `postgresql+psycopg://user@host/db`",
        json_schema_extra={"shown_default": "SQLite in the data directory"},
    )
    regions: Annotated[list[str], NoDecode] = Field(
        default=["region-1", "region-2"], description="regions this deployment serves"
    )
    host: str = Field(default="127.0.0.1", description="listen address")
    port: int = Field(default=8080, description="listen port")
    root_key: str | None = Field(
        default=None,
        description="base64 of 32 bytes; seals access-key secrets, KMS key material and plain"
        " store scopes. Every process of one deployment must use the same key.",
        json_schema_extra={"shown_default": "key file `root.key` in the data directory"},
    )
    max_body_bytes: int = Field(
        default=12 * MiB,
        description="request body limit (disk data uploads are streamed and exempt)",
        json_schema_extra={"shown_default": "12 MiB"},
    )
    token_ttl_seconds: int = Field(
        default=24 * 3600, description="lifetime of a token from `POST /v3/auth/tokens`"
    )
    signature_skew_seconds: int = Field(
        default=15 * 60,
        description="how far a signed request's `X-Sdk-Date` may be from the server's clock",
    )
    run_workers: bool = Field(
        default=True,
        description="run job workers in API processes (false: API only; `serve --no-jobs`)",
    )
    worker_threads: int = Field(default=2, ge=1, description="jobs a process runs at once")
    # A request's work holds the GIL most of the time it runs; threads beyond a few only take
    # turns at it, and past the number of requests in flight they cost throughput and tail
    # latency (bench/README.md, "One hand-off, four request threads"). A request waiting for
    # a row lock holds its thread: raise this where many requests wait on the same rows.
    request_threads: int = Field(
        default=4,
        ge=1,
        description="requests an API process works on at once (its threads); raise it where"
        " many requests wait for the same rows",
    )
    # Each check is argon2 with 64 MiB (about a quarter second of a core): a login flood must
    # leave the cores to signed requests (iam.throttle).
    login_checks: int = Field(
        default=1,
        ge=1,
        description="password checks (argon2, 64 MiB each) an API process runs at once; see"
        " Sign-in throttling",
    )
    job_lease_seconds: int = Field(
        default=60,
        ge=1,
        description="how long a job's claim lasts without a heartbeat before another worker"
        " takes it",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="`text` or `json` (one object a line)"
    )
    log_level: str = Field(default="INFO", description="`DEBUG`, `INFO`, `WARNING` or `ERROR`")
    metrics_enabled: bool = Field(default=True, description="serve Prometheus `/metrics`")
    prometheus_multiproc_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"),
        description="prometheus_client's multi-process directory (it reads the same variable);"
        " unset: `serve --workers N` makes a temporary one",
    )
    store_url: str | None = Field(
        default=None,
        description="backup data: a directory or `s3://bucket/prefix` (see Scale-out)",
        json_schema_extra={"shown_default": "`<data dir>/store`"},
    )
    s3_endpoint: str | None = Field(
        default=None, description="S3 endpoint URL (unset: the AWS default for the region)"
    )
    s3_region: str = Field(default="us-east-1", description="S3 region")
    s3_access_key: str | None = Field(default=None, description="S3 access key")
    s3_secret_key: str | None = Field(default=None, repr=False, description="S3 secret key")
    admin_token: str | None = Field(
        default=None,
        repr=False,
        description="bearer token of the operator's API (`/v1/admin/store/scrubs`); unset: no"
        " such API",
    )
    scrub_period_hours: float = Field(
        default=168.0,
        ge=0,
        description="hours between the workers' scheduled store scrubs (0: none)",
    )
    scrub_deep: bool = Field(
        default=False, description="scheduled scrubs decrypt and hash every block (slow)"
    )

    nbd_host: str = Field(
        default="127.0.0.1",
        description="address the NBD server listens on; other than loopback only with TLS",
    )
    nbd_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="NBD server port (`0`: a free port, chosen at start); `serve --nbd-port`",
    )
    nbd_tls_psk_file: Path | None = Field(
        default=None,
        description="NBD over TLS with pre-shared keys: a file of `identity:hexkey` lines (see"
        " NBD over TLS)",
    )
    nbd_tls_certificates_dir: Path | None = Field(
        default=None,
        description="NBD over TLS with X.509: a directory of ca-cert.pem, server-cert.pem and"
        " server-key.pem (see NBD over TLS)",
    )
    nbd_address: str | None = Field(
        default=None,
        description="host[:port] NBD clients are told (unset: where the NBD server listens)",
    )
    nbd_embedded: bool = Field(
        default=True,
        description="run the NBD server in API processes (false: `opencbr nbd serve` runs it;"
        " `serve --no-nbd`)",
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
        description="rate of a new disk's copy from a backup in MiB/s (`0`: as fast as it goes)",
    )

    @field_validator("nbd_host")
    @classmethod
    def _an_ip_address(cls, value: str) -> str:
        ipaddress.ip_address(value)  # a name would listen wherever it resolves: say which
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
