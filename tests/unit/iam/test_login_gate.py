"""The sign-in check slots: at most `slots` checks at once, and a sign-in that cannot start
within the wait is refused rather than held."""

from __future__ import annotations

import asyncio
import threading
import time

from opencbr.iam.errors import LoginBusy
from opencbr.iam.throttle import LoginGate


def test_slots_bound_the_checks_and_the_wait_bounds_every_answer() -> None:
    gate = LoginGate(slots=1, max_wait=0.5)
    running, most = 0, 0
    mutex = threading.Lock()

    def check() -> str:
        nonlocal running, most
        with mutex:
            running += 1
            most = max(most, running)
        time.sleep(0.2)  # a password check's worth
        with mutex:
            running -= 1
        return "checked"

    async def sign_in() -> tuple[str, float]:
        started = time.monotonic()
        try:
            answer = await gate.run(check)
        except LoginBusy as busy:
            answer = f"busy {busy.retry_after}"
        return answer, time.monotonic() - started

    async def flood() -> list[tuple[str, float]]:
        return await asyncio.gather(*(sign_in() for _ in range(8)))

    try:
        answers = asyncio.run(flood())
    finally:
        gate.close()
    assert most == 1
    outcomes = sorted(answer for answer, _ in answers)
    assert 1 <= outcomes.count("checked") <= 3  # those that started within 0.5 s
    assert outcomes.count("busy 1") == 8 - outcomes.count("checked")
    assert max(seconds for _, seconds in answers) < 0.5 + 0.2 + 0.3
