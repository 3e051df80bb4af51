"""Time, injected. The engine never calls `datetime.now()` itself, so escalation tests
move a fake clock instead of sleeping."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when told to; `sleep` moves it instead of waiting."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        with self._lock:
            self._now += delta
            return self._now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


class ShiftedClock(SystemClock):
    """The system clock, moved forward on request and never back: `baton dev`'s "skip ahead",
    which shows an escalation without waiting half an hour for it. Everything Baton records
    and every deadline it sets is on this clock, so the run's story stays in order."""

    def __init__(self, ahead: timedelta = timedelta(0)) -> None:
        if ahead < timedelta(0):
            raise ValueError("a clock may only be moved forward")
        self._ahead = ahead
        self._lock = threading.Lock()

    @property
    def ahead(self) -> timedelta:
        with self._lock:
            return self._ahead

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._ahead

    def advance(self, delta: timedelta) -> datetime:
        if delta <= timedelta(0):
            raise ValueError("a clock may only be moved forward")
        with self._lock:
            self._ahead += delta
            return datetime.now(UTC) + self._ahead
