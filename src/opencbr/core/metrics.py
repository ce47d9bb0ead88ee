"""Prometheus metrics: what every process counts, and what is read from shared state at scrape.

Two kinds of numbers, so that they stay right with N API and worker processes:

- Event counters and histograms (requests, latency, bytes backed up / restored / written to the
  store) are counted by the process that saw the event. With several processes on one host set
  `PROMETHEUS_MULTIPROC_DIR` (an empty directory, wiped when the service starts) for all of them:
  prometheus_client then keeps the values in files there and `/metrics` of any process sums
  them. Processes on other hosts are separate scrape targets (`opencbr worker --metrics-port`).
- State (jobs by kind and status, the store size) lives in the shared database and object
  store, so it is read at scrape time by collectors (`JobsCollector`, a store-size callable),
  never kept in a process.

Slices report their events with the `record_*` functions; they are cheap and thread-safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from .clock import utcnow
from .db import Database

__all__ = [
    "CONTENT_TYPE_LATEST",
    "JobsCollector",
    "MetricsExposition",
    "record_backup_bytes",
    "record_request",
    "record_restore_bytes",
    "record_scrub",
    "record_store_size",
    "record_store_write",
]

log = logging.getLogger(__name__)

# Seconds; API calls are mostly a few milliseconds, disk data uploads can take minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

HTTP_REQUESTS = Counter(
    "opencbr_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "opencbr_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
BACKUP_BYTES = Counter(
    "opencbr_backup_bytes", "Bytes of disk data read into backups (before dedup and compression)."
)
RESTORE_BYTES = Counter(
    "opencbr_restore_bytes", "Bytes of disk data written by restores and creation from backups."
)
STORE_WRITTEN_BYTES = Counter(
    "opencbr_store_written_bytes", "Bytes written to the object store (after dedup/compression)."
)
STORE_SIZE = Gauge(
    "opencbr_store_size_bytes",
    "Bytes held in the object store, as last measured (e.g. by garbage collection).",
    multiprocess_mode="mostrecent",
)

SCRUB_OBJECTS = Counter(
    "opencbr_scrub_objects_checked", "Store objects (packs, manifests, catalogue) scrubs checked."
)
SCRUB_ERRORS = Counter("opencbr_scrub_errors", "Damaged or missing store objects scrubs found.")
SCRUB_DAMAGED = Gauge(
    "opencbr_scrub_damaged_backups",
    "Backups the last scrub found damaged (marked `error`).",
    multiprocess_mode="mostrecent",
)


def record_scrub(objects: int, errors: int, damaged_backups: int) -> None:
    SCRUB_OBJECTS.inc(objects)
    SCRUB_ERRORS.inc(errors)
    SCRUB_DAMAGED.set(damaged_backups)


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


def record_backup_bytes(count: int) -> None:
    """Disk bytes a backup read (logical size, holes excluded)."""
    BACKUP_BYTES.inc(count)


def record_restore_bytes(count: int) -> None:
    """Disk bytes a restore (or a disk created from a backup) wrote."""
    RESTORE_BYTES.inc(count)


def record_store_write(count: int) -> None:
    """Bytes actually stored (new packs), to compare with `record_backup_bytes`."""
    STORE_WRITTEN_BYTES.inc(count)


def record_store_size(count: int) -> None:
    """The store's total size, when something measured it (garbage collection, verify)."""
    STORE_SIZE.set(count)


class JobsCollector(Collector):
    """Jobs by kind and status, and the age of the oldest due job, read from the jobs table."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from .jobs import Job, JobStatus  # the job model imports this package's db module

        jobs = GaugeMetricFamily(
            "opencbr_jobs", "Jobs in the queue, by kind and status.", labels=["kind", "status"]
        )
        oldest = GaugeMetricFamily(
            "opencbr_jobs_oldest_queued_seconds",
            "Age of the oldest queued job that is due (0 when none): the workers' backlog.",
        )
        up = GaugeMetricFamily("opencbr_jobs_scrape_ok", "1 if the jobs table could be read.")
        try:
            with self.database.unit_of_work() as session:
                rows = session.execute(
                    select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
                ).all()
                now = utcnow()
                first_due = session.scalar(
                    select(func.min(Job.run_after)).where(
                        Job.status == JobStatus.QUEUED, Job.run_after <= now
                    )
                )
        except Exception:
            log.exception("metrics: cannot read the jobs table")
            up.add_metric([], 0)
            yield up
            return
        for kind, status, count in rows:
            jobs.add_metric([kind, status], count)
        oldest.add_metric([], (now - first_due).total_seconds() if first_due else 0.0)
        up.add_metric([], 1)
        yield from (jobs, oldest, up)


class _StoreSizeCollector(Collector):
    """The store size measured at scrape time by a callable the runtime provides."""

    def __init__(self, measure: Callable[[], int]) -> None:
        self.measure = measure

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            size = self.measure()
        except Exception:
            log.exception("metrics: cannot measure the store")
            return
        family = GaugeMetricFamily(
            "opencbr_store_size_bytes", "Bytes held in the object store, measured at scrape."
        )
        family.add_metric([], size)
        yield family


class _Forward(Collector):
    """Everything a registry collects (used to add this process's default registry)."""

    def __init__(self, source: CollectorRegistry, skip: Iterable[str] = ()) -> None:
        self.source, self.skip = source, frozenset(skip)

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():
            if family.name not in self.skip:
                yield family


class MetricsExposition:
    """The `/metrics` document of one process: its (or all local processes') counters + state.

    `multiproc_dir` is the directory prometheus_client writes to (`PROMETHEUS_MULTIPROC_DIR`,
    which it reads at import); None means in-process values.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        database: Database,
        multiproc_dir: Path | None = None,
        store_size: Callable[[], int] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        # A store size measured at scrape replaces the last recorded one.
        measured = {"opencbr_store_size_bytes"} if store_size else set()
        source = REGISTRY
        if multiproc_dir is not None:
            source = CollectorRegistry(auto_describe=False)
            multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
                source, path=str(multiproc_dir)
            )
        self.registry.register(_Forward(source, skip=measured))
        self.registry.register(JobsCollector(database))
        if store_size is not None:
            self.registry.register(_StoreSizeCollector(store_size))

    def render(self) -> bytes:
        return generate_latest(self.registry)
