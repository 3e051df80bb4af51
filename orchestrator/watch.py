"""Waiting for a run to change without holding a thread.

A waiter (an API long poll, an MCP tool call) registers a wake-up for one run and sleeps on
its event loop. It is woken:

- at once, when this process commits a change to that run: the watch is one of the
  engine's post-commit observers (`Notifier`), and it hands the wake-up to the waiter's
  loop with `call_soon_threadsafe`;
- within `poll` seconds, when another process (a replica, `baton decide` on the command
  line) commits one: a single thread reads the event table's new rows, once per `poll`
  for all waiters together, and only while someone waits.

An event of no run (the emergency stop, and its lifting: what a caller may do changes for
every run) wakes every waiter.

A thousand waiters cost a thousand small objects and no thread each.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

import structlog

from orchestrator.events import DomainEvent
from orchestrator.workers import BackgroundLoop
from storage.changes import events_since, latest_event_id
from storage.engine import Database

log = structlog.get_logger("baton.watch")

# On PostgreSQL an event id can commit after a higher one was read: the poll reads again a
# window of ids below the highest it has seen, and skips the ids it has seen already.
_LOOKBACK = 500
_BATCH = 2000


class RunWatch:
    def __init__(self, db: Database, *, poll: float = 1.0) -> None:
        self.db = db
        self._waiters: dict[int, set[Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._loop = BackgroundLoop("baton-watch", self._poll, poll)
        self._high: int | None = None
        self._seen: set[int] = set()
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if not self._started:
            self._started = True
            self._loop.start()

    def stop(self) -> None:
        if self._started:
            self._loop.stop()
            self._started = False

    # -- the engine's observer -----------------------------------------------------------------
    def notify(self, event: DomainEvent) -> None:
        self._wake(event.run_id)

    def _wake(self, run_id: int | None) -> None:
        """Wake the run's waiters; everyone's for an event of no run (halted, resumed)."""
        with self._lock:
            if run_id is None:
                wakes = [wake for found in self._waiters.values() for wake in found]
            else:
                wakes = list(self._waiters.get(run_id, ()))
        for wake in wakes:
            with contextlib.suppress(RuntimeError):  # the waiter's loop has closed: it is gone
                wake()

    # -- waiting -------------------------------------------------------------------------------
    def subscribe(self, run_id: int, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake` (from any thread) whenever the run may have changed; returns the way
        to stop."""
        with self._lock:
            self._waiters.setdefault(run_id, set()).add(wake)

        def unsubscribe() -> None:
            with self._lock:
                found = self._waiters.get(run_id)
                if found is not None:
                    found.discard(wake)
                    if not found:
                        del self._waiters[run_id]

        return unsubscribe

    def changes(self, run_id: int) -> Changes:
        """An asyncio-side handle for one waiter: `async with watch.changes(id) as c`."""
        return Changes(self, run_id)

    @property
    def waiting(self) -> int:
        with self._lock:
            return sum(len(w) for w in self._waiters.values())

    # -- other processes' changes --------------------------------------------------------------
    def _poll(self) -> None:
        with self._lock:
            watched = set(self._waiters)
        if not watched:  # nobody waits: read nothing, and start afresh when someone does
            self._high = None
            self._seen.clear()
            return
        changed: set[int | None] = set()
        with self.db.read() as s:
            if self._high is None:
                self._high = latest_event_id(s)
            while True:
                found = events_since(s, max(0, self._high - _LOOKBACK), _BATCH)
                for event_id, run_id in found:
                    if event_id in self._seen:
                        continue
                    self._seen.add(event_id)
                    self._high = max(self._high, event_id)
                    if run_id is None or run_id in watched:
                        changed.add(run_id)
                if len(found) < _BATCH:
                    break
        self._seen = {i for i in self._seen if i > self._high - _LOOKBACK}
        for run_id in changed:
            self._wake(run_id)


class Changes:
    """One waiter's wake-ups, on the event loop it was entered in."""

    def __init__(self, watch: RunWatch, run_id: int) -> None:
        self.watch = watch
        self.run_id = run_id
        self._event = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None

    async def __aenter__(self) -> Changes:
        loop = asyncio.get_running_loop()
        event = self._event
        self._unsubscribe = self.watch.subscribe(
            self.run_id, lambda: loop.call_soon_threadsafe(event.set))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    def clear(self) -> None:
        """Forget earlier wake-ups; call before reading the run's state."""
        self._event.clear()

    async def wait(self, timeout: float) -> bool:
        """True when woken, False when `timeout` seconds passed first."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
            return True
        except TimeoutError:
            return False
