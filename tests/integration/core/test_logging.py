"""Structured logs: JSON lines carry the request id set by the request middleware."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from opencbr.core.logging import (
    JsonFormatter,
    TextFormatter,
    configure_logging,
    job_context,
    logging_config,
    request_context,
)
from tests.conftest import LiveServer


class Capture(logging.Handler):
    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # `Handler.handle` holds the handler's lock around this call.
        self.lines.append(self.format(record))


@pytest.fixture
def json_lines() -> Iterator[Capture]:
    capture = Capture(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(capture)
    root.setLevel(logging.INFO)
    yield capture
    root.removeHandler(capture)
    root.setLevel(previous)


def test_json_line_has_context_extra_fields_and_exception(json_lines: Capture) -> None:
    log = logging.getLogger("opencbr.test")
    with request_context("req-1"), job_context("job-9"):
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed %s", "here", extra={"vault_id": "v-1"})
    log.info("outside")
    inside, outside = (json.loads(line) for line in json_lines.lines)
    assert inside["message"] == "failed here"
    assert inside["level"] == "ERROR"
    assert inside["logger"] == "opencbr.test"
    assert inside["request_id"] == "req-1"
    assert inside["job_id"] == "job-9"
    assert inside["vault_id"] == "v-1"
    assert "ValueError: boom" in inside["exception"]
    assert inside["time"].endswith("+00:00")
    assert "request_id" not in outside
    assert "job_id" not in outside


def test_text_format_shows_request_id() -> None:
    record = logging.LogRecord("opencbr.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    with request_context("req-2"):
        line = TextFormatter().format(record)
    assert line.endswith("INFO    opencbr.x [req-2] hello you")


def test_every_log_line_of_a_request_carries_its_id(
    server: LiveServer, json_lines: Capture
) -> None:
    """The access line (and anything a handler logs) has the id the client got back."""
    response = httpx.get(server.url + "/v3/projects/not-a-project")
    request_id = response.headers["x-request-id"]
    entries = [json.loads(line) for line in json_lines.lines]
    access = [e for e in entries if e["logger"] == "opencbr.access"]
    assert [e["request_id"] for e in access] == [request_id]
    assert access[0]["route"] == "/v3/projects/{project_id}"
    assert access[0]["status"] == response.status_code
    assert access[0]["path"] == "/v3/projects/not-a-project"


def test_logging_config_selects_the_formatter() -> None:
    config = logging_config("json", "debug")
    assert config["handlers"]["default"]["formatter"] == "json"
    assert config["root"]["level"] == "DEBUG"
    assert logging_config("text")["handlers"]["default"]["formatter"] == "text"
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging("json", "WARNING")
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
