"""Sign-in throttling: password guessing is slowed per user name, and password checks are
bounded per process so that a flood of sign-ins cannot starve signed requests.

Rules (`POST /v3/auth/tokens` and the console's sign-in, both through `login`):

- Per user name, whether or not the user exists (so the answer tells nothing about names):
  after `MAX_FAILURES` consecutive failures the name is locked for `FIRST_LOCK` seconds, and
  each further failure after a lock ends locks it again for twice as long as the last time, up
  to `LONGEST_LOCK`. While locked every sign-in answers 429 IAM.0102 with `Retry-After`,
  *without* checking the password: a guess made then is not even tried. A success clears the
  count; so do `FORGET_AFTER` seconds without a failure.
- The count lives in the database (`iam_login_failures`), so every API process of a
  deployment sees the same lock. It is updated atomically (a row lock, then `failures + 1`);
  two guesses checked at the same moment may both run, so a name can see a few more failures
  than `MAX_FAILURES` in all, never more than the processes' check slots at once.
- No per-address limit: browsers behind one proxy or NAT share an address, and a limit there
  would lock every user of it out because of one of them. The check slots bound what any
  number of addresses can cost.
- Check slots (`LoginGate`): a process runs at most `Settings.login_checks` sign-ins at once,
  on threads of their own, never on the request threads that signed requests need. A sign-in
  waits for a slot on the event loop (no thread held); one that cannot start within `MAX_WAIT`
  seconds answers 429 IAM.0103 (`Retry-After: 1`): no request is held open for more than
  about `MAX_WAIT` plus one check (~0.25 s).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from anyio import from_thread
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Part, Runtime
from opencbr.core.db import Database

from . import service
from .errors import LoginBusy, LoginFailed, LoginThrottled
from .models import LoginFailures
from .service import Principal

__all__ = [
    "FIRST_LOCK",
    "LONGEST_LOCK",
    "MAX_FAILURES",
    "LoginGate",
    "LoginRequest",
    "gate_of",
    "lock_seconds",
    "login",
]

T = TypeVar("T")

MAX_FAILURES = 5
FIRST_LOCK = 30  # seconds
LONGEST_LOCK = 3600
FORGET_AFTER = timedelta(days=1)
PURGE_BATCH = 100
MAX_WAIT = 1.0  # seconds a sign-in may wait for a check slot


@dataclass(frozen=True)
class LoginRequest:
    user_name: str
    password: str
    ttl: timedelta
    project_id: str | None = None
    domain_name: str | None = None


def lock_seconds(failures: int) -> int:
    """How long a name is locked after its `failures`-th consecutive failure (0: not)."""
    if failures < MAX_FAILURES:
        return 0
    return int(min(LONGEST_LOCK, FIRST_LOCK * 2 ** min(failures - MAX_FAILURES, 20)))


def _digest(user_name: str) -> str:
    return hashlib.sha256(user_name.encode("utf-8", "surrogatepass")).hexdigest()


def _refuse_if_locked(session: Session, digest: str, now: datetime) -> bool:
    """Raise `LoginThrottled` while the name is locked; whether it has failures on record."""
    row = session.get(LoginFailures, digest)
    if row is None:
        return False
    if row.locked_until is not None and row.locked_until > now:
        wait = math.ceil((row.locked_until - now).total_seconds())
        raise LoginThrottled(retry_after=max(1, wait))
    return True


def _count_failure(session: Session, digest: str, now: datetime) -> None:
    row = session.get(LoginFailures, digest, with_for_update=True)
    if row is None:
        try:
            with session.begin_nested():
                session.add(LoginFailures(name_digest=digest, failures=0, updated_at=now))
        except IntegrityError:  # another process counted this name's first failure
            pass
        row = session.get(LoginFailures, digest, with_for_update=True, populate_existing=True)
        assert row is not None
    if row.updated_at < now - FORGET_AFTER:
        row.failures = 0
    row.failures += 1
    seconds = lock_seconds(row.failures)
    row.locked_until = now + timedelta(seconds=seconds) if seconds else None
    row.updated_at = now
    # Forgotten names go with the next failures anywhere, a batch at a time: the table stays
    # small. Rows another sign-in holds are skipped, so two purges never wait on each other.
    forgotten = (
        select(LoginFailures.name_digest)
        .where(LoginFailures.updated_at < now - FORGET_AFTER)
        .limit(PURGE_BATCH)
        .with_for_update(skip_locked=True)
    )
    stale = list(session.scalars(forgotten))
    if stale:
        session.execute(delete(LoginFailures).where(LoginFailures.name_digest.in_(stale)))


def login(database: Database, request: LoginRequest) -> tuple[str, Principal, datetime]:
    """Issue a token for a user name and password under the rules above (blocking)."""
    digest = _digest(request.user_name)
    with database.unit_of_work() as session:
        had_failures = _refuse_if_locked(session, digest, utcnow())
    try:
        with database.unit_of_work() as session:
            issued = service.issue_token(
                session,
                request.user_name,
                request.password,
                request.ttl,
                project_id=request.project_id,
                domain_name=request.domain_name,
            )
    except LoginFailed:
        with database.unit_of_work() as session:
            _count_failure(session, digest, utcnow())
        raise
    if had_failures:
        with database.unit_of_work() as session:
            session.execute(delete(LoginFailures).where(LoginFailures.name_digest == digest))
    return issued


class LoginGate:
    """A process's check slots: sign-ins run on `slots` threads of their own (the rules).

    A sign-in waits for a slot on the event loop, holding no thread, for at most `max_wait`
    seconds; then it is refused. Holding a refused sign-in that long, rather than refusing it
    at once, also slows a client that retries as fast as it is answered."""

    def __init__(self, slots: int, max_wait: float = MAX_WAIT) -> None:
        self._threads = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="login")
        self._slots = slots
        self._max_wait = max_wait
        self._free: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    def _semaphore(self) -> asyncio.Semaphore:
        """The slots as seen from this event loop (an API process has one)."""
        loop = asyncio.get_running_loop()
        if loop not in self._free:
            self._free[loop] = asyncio.Semaphore(self._slots)
        return self._free[loop]

    async def run(self, fn: Callable[[], T]) -> T:
        """`fn()` on a check slot; `LoginBusy` when none frees up within `max_wait`."""
        free = self._semaphore()
        try:
            await asyncio.wait_for(free.acquire(), self._max_wait)
        except TimeoutError:
            raise LoginBusy(retry_after=1) from None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, fn)
        finally:
            free.release()

    def run_from_thread(self, fn: Callable[[], T]) -> T:
        """`run`, for a caller on a worker thread of the event loop (`run_in_threadpool`)."""
        return from_thread.run(self.run, fn)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


_GATE: Part[LoginGate] = Part("iam.login_gate")
_gate_mutex = threading.Lock()


def gate_of(runtime: Runtime) -> LoginGate:
    """The process's gate (one per runtime), sized by `Settings.login_checks`."""
    with _gate_mutex:
        return runtime.parts.setdefault(_GATE, lambda: LoginGate(runtime.settings.login_checks))
