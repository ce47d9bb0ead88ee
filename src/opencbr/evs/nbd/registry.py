"""The deployment's running NBD servers, in the database (`evs_nbd_servers`).

Every NBD server registers where clients reach it and the TLS it requires, and refreshes its
record every `BEAT_SECONDS` while it runs; it deletes the record when it stops. An API process
without an NBD server of its own (`Settings.nbd_embedded` false: the NBD side runs as
`opencbr nbd serve`) names in a new export one whose record is younger than `STALE_SECONDS`
(a server that died without deleting it is passed over). Any server serves any export: every
broker resolves export names in the database.
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.db import Database
from opencbr.core.ids import new_uuid

from ..models import NbdServerRecord

__all__ = ["BEAT_SECONDS", "STALE_SECONDS", "Registration", "live_server"]

BEAT_SECONDS = 5.0
STALE_SECONDS = 30.0
FORGET_SECONDS = 3600.0
log = logging.getLogger(__name__)


def live_server(session: Session) -> NbdServerRecord | None:
    """One of the running NBD servers (at random, to spread exports), or None."""
    since = utcnow() - timedelta(seconds=STALE_SECONDS)
    found = list(session.scalars(select(NbdServerRecord).where(NbdServerRecord.seen_at >= since)))
    return random.choice(found) if found else None


class Registration:
    """One server's record, kept fresh by a thread from `start` until `stop`."""

    def __init__(self, database: Database, address: str, tls: str) -> None:
        self.database = database
        self.id = new_uuid()
        self.address = address
        self.tls = tls
        self._stopped = threading.Event()
        self._registered = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="nbd-registry")

    def start(self) -> None:
        """Registers from the thread: the caller may hold a write transaction (an export
        being opened starts the server), which a write of its own would wait for on SQLite."""
        self._thread.start()

    def wait_registered(self, timeout: float = 30.0) -> bool:
        return self._registered.wait(timeout)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        try:
            with self.database.unit_of_work() as session:
                session.execute(delete(NbdServerRecord).where(NbdServerRecord.id == self.id))
        except Exception:  # the record goes stale instead
            log.exception("removing the NBD server's record failed")

    def _refresh(self) -> None:
        """This server's record now; the records of servers gone for an hour are deleted."""
        with self.database.unit_of_work() as session:
            gone = utcnow() - timedelta(seconds=FORGET_SECONDS)
            session.execute(delete(NbdServerRecord).where(NbdServerRecord.seen_at < gone))
            record = session.get(NbdServerRecord, self.id)
            if record is None:
                session.add(NbdServerRecord(id=self.id, address=self.address, tls=self.tls))
            else:
                record.seen_at = utcnow()

    def _beat(self) -> None:
        while True:
            try:
                self._refresh()
                self._registered.set()
            except Exception:
                log.exception("refreshing the NBD server's record failed")
            if self._stopped.wait(BEAT_SECONDS):
                return
