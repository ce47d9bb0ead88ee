"""Prometheus `/metrics` on a real server, and on real `serve --workers 2` / `worker` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opencbr.core import metrics
from opencbr.core.context import Runtime
from opencbr.core.jobs import enqueue
from tests.conftest import LiveServer, _free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_template_and_status(server: LiveServer) -> None:
    route = "/v3/projects/{project_id}"
    before = scrape(server.url + "/metrics")
    for _ in range(3):
        httpx.get(f"{server.url}/v3/projects/{uuid.uuid4().hex}")  # unsigned: 401
    httpx.get(server.url + "/no/such/route")
    after = scrape(server.url + "/metrics")

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("opencbr_http_requests_total", method="GET", route=route, status="401") == 3
    assert delta("opencbr_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert delta("opencbr_http_request_duration_seconds_count", method="GET", route=route) == 3
    assert (
        delta("opencbr_http_request_duration_seconds_bucket", method="GET", route=route, le="+Inf")
        == 3
    )
    # Ids never become label values.
    assert not any(
        "/v3/projects/" in dict(labels).get("route", "").replace(route, "") for _, labels in after
    )


def test_jobs_are_read_from_the_table_at_scrape_time(server: LiveServer, runtime: Runtime) -> None:
    kind = f"metrics-{uuid.uuid4().hex[:8]}"
    with runtime.database.unit_of_work() as session:
        for _ in range(2):
            enqueue(session, kind, {})
    samples = scrape(server.url + "/metrics")
    assert value(samples, "opencbr_jobs", kind=kind, status="queued") == 2
    assert value(samples, "opencbr_jobs_scrape_ok") == 1
    assert value(samples, "opencbr_jobs_oldest_queued_seconds") >= 0


def test_byte_counters_and_store_size(runtime: Runtime) -> None:
    runtime.store_size = lambda: 123_456
    with LiveServer(runtime) as live:
        before = scrape(live.url + "/metrics")
        metrics.record_backup_bytes(4096)
        metrics.record_restore_bytes(1024)
        metrics.record_store_write(512)
        after = scrape(live.url + "/metrics")
    for name, count in [
        ("opencbr_backup_bytes_total", 4096),
        ("opencbr_restore_bytes_total", 1024),
        ("opencbr_store_written_bytes_total", 512),
    ]:
        assert value(after, name) - value(before, name) == count
    assert value(after, "opencbr_store_size_bytes") == 123_456


# -- real processes ---------------------------------------------------------------------------


def _wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.send_signal(signal.SIGINT if "serve" in process.args else signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.slow
def test_two_api_processes_and_a_worker_share_one_database(
    tmp_path: Path, pg_database: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    """`serve --workers 2 --no-jobs` + `worker`: metrics sum both API processes; the worker's
    own endpoint reads the same jobs table; JSON log lines carry each request's id."""
    api_port, worker_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "OPENCBR_DATA_DIR": str(tmp_path / "data"),
        "OPENCBR_DATABASE_URL": pg_database,
        "OPENCBR_LOG_FORMAT": "json",
        "OPENCBR_ROOT_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    opencbr = [str(Path(sys.executable).parent / "opencbr")]
    api_log = (tmp_path / "api.log").open("wb")
    processes.append(
        subprocess.Popen(
            [*opencbr, "serve", "--workers", "2", "--no-jobs", "--port", str(api_port)],
            env=env,
            stdout=api_log,
            stderr=subprocess.STDOUT,
        )
    )
    processes.append(
        subprocess.Popen(
            [
                *opencbr,
                "worker",
                "--threads",
                "1",
                "--metrics-port",
                str(worker_port),
                "--metrics-host",
                "127.0.0.1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    api = f"http://127.0.0.1:{api_port}"
    _wait_for(api + "/healthz", processes[0])
    _wait_for(f"http://127.0.0.1:{worker_port}/metrics", processes[1])

    def call(_: int) -> str:
        # a connection each, concurrently, so that both processes take requests
        response = httpx.get(api + "/v3/projects/abc", timeout=30)
        assert response.status_code == 401
        return response.headers["x-request-id"]

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(call, range(40)))
    assert len(ids) == 40

    route = "/v3/projects/{project_id}"
    for _ in range(4):  # whichever process answers the scrape sums all of them
        samples = scrape(api + "/metrics")
        counted = value(
            samples, "opencbr_http_requests_total", method="GET", route=route, status="401"
        )
        assert counted == 40
    assert value(samples, "opencbr_jobs_scrape_ok") == 1
    worker_samples = scrape(f"http://127.0.0.1:{worker_port}/metrics")
    assert value(worker_samples, "opencbr_jobs_scrape_ok") == 1

    time.sleep(0.5)
    lines = [
        json.loads(line)
        for line in (tmp_path / "api.log").read_text().splitlines()
        if line.startswith("{")
    ]
    access = [
        line for line in lines if line["logger"] == "opencbr.access" and line["route"] == route
    ]
    assert {line["request_id"] for line in access} == ids
