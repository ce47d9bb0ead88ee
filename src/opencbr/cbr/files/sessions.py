"""The appliances of a process: one per (project, backup), shared by every API, CLI and
console call of that project on that backup, closed after `idle_seconds` unused.

Launching an appliance takes seconds (about 17 s under TCG), so it is kept; each holds
`memory_mib` of guest RAM, so at most `limit` live at once: a new one replaces the longest
idle, and when every one is busy the caller is told to come back (`FileBrowserBusy`).
A reaper thread closes idle appliances and kills those whose call stalled (appliance.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import FileBrowserBusy
from .appliance import Appliance

__all__ = ["SessionLimits", "Sessions"]

REAP_SECONDS = 1.0
log = logging.getLogger(__name__)
Key = tuple[str, str]


@dataclass(frozen=True)
class SessionLimits:
    limit: int = 4
    memory_mib: int = 512
    idle_seconds: float = 300.0
    stall_seconds: float = 60.0


@dataclass
class _Slot:
    """One key's appliance; its lock makes concurrent first calls share one launch."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    appliance: Appliance | None = None


class Sessions:
    def __init__(self, limits: SessionLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._slots: dict[Key, _Slot] = {}
        self._stopped = threading.Event()
        self._reaper = threading.Thread(target=self._reap, daemon=True, name="file-sessions")
        self._reaper.start()

    def get(self, key: Key, launch: Callable[[], Appliance]) -> Appliance:
        """The live appliance of `key`, launched by `launch` when there is none."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                self._make_room()
                slot = self._slots[key] = _Slot()
        with slot.lock:
            if slot.appliance is not None and slot.appliance.broken:
                slot.appliance.close()
                slot.appliance = None
            if slot.appliance is None:
                try:
                    slot.appliance = launch()
                except BaseException:
                    with self._lock:
                        if self._slots.get(key) is slot:
                            del self._slots[key]
                    raise
            slot.appliance.last_used = time.monotonic()
            return slot.appliance

    def _make_room(self) -> None:
        """Under the lock: free a place for one more appliance, or refuse."""
        if len(self._slots) < self.limits.limit:
            return
        idle = [
            (slot.appliance.last_used, key)
            for key, slot in self._slots.items()
            if slot.appliance is not None and not slot.appliance.busy
        ]
        if not idle:
            raise FileBrowserBusy(limit=self.limits.limit)
        _, key = min(idle)
        self._close(key)

    def _close(self, key: Key) -> None:
        slot = self._slots.pop(key)
        if slot.appliance is not None:
            threading.Thread(target=slot.appliance.close, daemon=True).start()

    def count(self) -> int:
        with self._lock:
            return sum(1 for slot in self._slots.values() if slot.appliance is not None)

    def close_all(self) -> None:
        self._stopped.set()
        with self._lock:
            slots = list(self._slots.values())
            self._slots.clear()
        for slot in slots:
            if slot.appliance is not None:
                slot.appliance.close()

    def _reap(self) -> None:
        while not self._stopped.wait(REAP_SECONDS):
            try:
                self._reap_once()
            except Exception:
                log.exception("reaping file browsers failed")

    def _reap_once(self) -> None:
        now = time.monotonic()
        with self._lock:
            for key, slot in list(self._slots.items()):
                appliance = slot.appliance
                if appliance is None:
                    continue
                appliance.check_stall(self.limits.stall_seconds)
                idle = now - appliance.last_used > self.limits.idle_seconds
                if (appliance.broken or idle) and not appliance.busy:
                    self._close(key)
