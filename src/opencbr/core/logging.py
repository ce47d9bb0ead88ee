"""Process logging: plain text for people, one JSON object a line for log collectors.

The request middleware puts the request id in a context variable for the duration of a request
(`request_context`); every record logged while it is set carries it, in both formats, also from
sync route handlers (which run in worker threads that inherit the context). Jobs may do the same
with `job_context` so a job's log lines carry its id.
"""

from __future__ import annotations

import json
import logging
import logging.config
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "current_request_id",
    "job_context",
    "logging_config",
    "request_context",
]

LogFormat = Literal["text", "json"]

_request_id: ContextVar[str | None] = ContextVar("opencbr_request_id", default=None)
_job_id: ContextVar[str | None] = ContextVar("opencbr_job_id", default=None)

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_STANDARD = frozenset(
    {
        *vars(logging.LogRecord("", 0, "", 0, "", None, None)),
        "message",
        "asctime",
        "taskName",
        "color_message",
    }
)


def current_request_id() -> str | None:
    return _request_id.get()


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


def _context_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    request_id = getattr(record, "request_id", None) or _request_id.get()
    if request_id:
        fields["request_id"] = request_id
    job_id = getattr(record, "job_id", None) or _job_id.get()
    if job_id:
        fields["job_id"] = job_id
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request/job id, `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
            **_context_fields(record),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time level logger [request id] message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(context)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = _context_fields(record)
        record.context = "".join(f"[{value}] " for value in fields.values())
        return super().format(record)


def logging_config(log_format: LogFormat = "text", level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for our loggers and uvicorn's (pass it to uvicorn too).

    uvicorn's own access log is dropped: the request middleware logs each request on
    `opencbr.access` with its request id, route, status and duration instead.
    """
    formatter = "json" if log_format == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": JsonFormatter},
            "text": {"()": TextFormatter},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": formatter,
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            # A line per migration step at every start buries what `serve` prints (the
            # demo credentials); OPENCBR_LOG_LEVEL=DEBUG shows them.
            "alembic": {"handlers": [], "level": _quieter(level), "propagate": True},
        },
    }


def _quieter(level: str) -> str:
    return "DEBUG" if level.upper() == "DEBUG" else "WARNING"


def configure_logging(log_format: LogFormat = "text", level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(log_format, level))
