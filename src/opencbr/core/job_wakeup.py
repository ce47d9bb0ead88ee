"""Waking idle job workers when a job is enqueued, so a job starts when it is due, not at the
next poll.

- In this process: `enqueue` marks its session; once that session's transaction commits (the
  job exists for other transactions only then), the process's `Wakeup` wakes every idle
  worker thread. A rolled-back enqueue wakes nobody.
- Across processes (PostgreSQL): `enqueue` also issues `NOTIFY opencbr_jobs`, which
  PostgreSQL delivers at commit and drops on rollback; each worker pool holds one connection
  that LISTENs and wakes its threads (`NotificationListener`).
- Polling stays as the fallback: a job due later (a retry's backoff, a delayed job), a
  notification lost with its connection, or SQLite across processes.

A worker reads the wake-up generation before it looks for a job and waits only while the
generation is unchanged, so a job enqueued between its look and its wait is not missed.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from .db import Database

__all__ = ["CHANNEL", "NotificationListener", "Wakeup", "announce_job", "process_wakeup"]

log = logging.getLogger(__name__)

CHANNEL = "opencbr_jobs"
_ENQUEUED = "opencbr_job_enqueued"


class Wakeup:
    """A generation counter that idle workers wait on."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        return self._generation

    def notify(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Return when the generation differs from `seen`, or after `timeout` seconds."""
        with self._condition:
            self._condition.wait_for(lambda: self._generation != seen, timeout)


_PROCESS_WAKEUP = Wakeup()


def process_wakeup() -> Wakeup:
    """The wake-up of this process's worker pools."""
    return _PROCESS_WAKEUP


def announce_job(session: Session) -> None:
    """Called by `enqueue`: wake the workers once the session's transaction commits."""
    session.info[_ENQUEUED] = True
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {CHANNEL}"))


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.info.pop(_ENQUEUED, False):
        _PROCESS_WAKEUP.notify()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_ENQUEUED, None)


class NotificationListener:
    """A thread holding one PostgreSQL connection that LISTENs on `CHANNEL` and wakes
    `wakeup` on each notification. A lost connection is opened again after `retry_seconds`
    (the workers poll meanwhile)."""

    # How long one wait for notifications lasts: the listener ends this long after `stop`.
    WAIT_SECONDS = 0.5

    def __init__(
        self, database: Database, wakeup: Wakeup, stop: threading.Event, retry_seconds: float
    ) -> None:
        self.database, self.wakeup, self.stop = database, wakeup, stop
        self.retry_seconds = retry_seconds
        self.listening = threading.Event()
        self.thread = threading.Thread(target=self._run, name="job-listener", daemon=True)

    def start(self) -> NotificationListener:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self._listen()
            except Exception as error:
                log.warning("job notifications lost (%s); polling until they are back", error)
            self.listening.clear()
            self.stop.wait(self.retry_seconds)

    def _listen(self) -> None:
        raw = self.database.engine.raw_connection()
        connection: Any = raw.driver_connection
        raw.detach()  # a connection of its own: never handed back to the pool
        try:
            connection.autocommit = True
            connection.execute(f"LISTEN {CHANNEL}")
            self.listening.set()
            self.wakeup.notify()  # jobs enqueued while nobody listened
            while not self.stop.is_set():
                for _ in connection.notifies(timeout=self.WAIT_SECONDS, stop_after=1):
                    self.wakeup.notify()
        finally:
            connection.close()
