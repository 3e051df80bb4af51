"""A thread pool that knows whether it is busy, so a shutdown (or a test) can wait until
the work it accepted is done."""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class TrackingExecutor(ThreadPoolExecutor):
    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._in_flight = 0
        self._count_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._count_lock:
            self._in_flight += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future[Any]) -> None:
        with self._count_lock:
            self._in_flight -= 1

    @property
    def busy(self) -> bool:
        with self._count_lock:
            return self._in_flight > 0


class BackgroundLoop:
    """Runs `work` in a thread of its own every `every` seconds, or at once when woken;
    `stop()` lets the current round finish. An exception is logged and the loop goes on."""

    def __init__(self, name: str, work: Callable[[], Any], every: float) -> None:
        self.name = name
        self.work = work
        self.every = every
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._soonest: float | None = None  # time.monotonic() of an earlier next round

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name=self.name)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def wake_after(self, seconds: float) -> None:
        """Have the next round start within `seconds`, even if nothing wakes the loop (work
        that waits for a moment of its own, sooner than the next poll)."""
        at = time.monotonic() + seconds
        soonest = self._soonest
        if soonest is None or at < soonest:
            self._soonest = at

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        import structlog

        log = structlog.get_logger("baton.workers")
        while not self._stop.is_set():
            try:
                self.work()
            except Exception:
                log.exception("background_work_failed", loop=self.name)
            wait, soonest = self.every, self._soonest
            if soonest is not None:
                wait = max(0.0, min(wait, soonest - time.monotonic()))
            self._wake.wait(wait)
            self._wake.clear()
            self._soonest = None  # the round about to run is the one asked for


class CallTimedOut(Exception):
    """A call did not return in time (and goes on in its thread)."""


class CallThreads:
    """Threads for calls that may hang (agents, actions), each waited for with a timeout.
    An idle thread takes the next call; a new one starts only when none is idle (starting
    a thread costs about as much as SQLite committing a transaction). A call that times out
    keeps its thread until it returns, since Python cannot stop it; the threads are daemons,
    so one stuck call never holds up the process's exit. At most `keep` idle threads wait.
    A call runs in a copy of the caller's context: its log lines carry the run and step."""

    def __init__(self, name: str, keep: int = 8) -> None:
        self.name = name
        self.keep = keep
        self._idle: list[queue.SimpleQueue[Any]] = []
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], Any], timeout: float) -> Any:
        """`fn()`'s result or exception; CallTimedOut when it has not returned in `timeout`
        seconds (a TimeoutError would be mistaken for one that `fn` raised)."""
        done = threading.Event()
        box: dict[str, Any] = {}
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(inbox,), daemon=True, name=self.name).start()
        inbox.put((contextvars.copy_context(), fn, box, done))
        if not done.wait(timeout):
            raise CallTimedOut(f"no answer in {timeout:g}s")
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _serve(self, inbox: queue.SimpleQueue[Any]) -> None:
        while True:
            context, fn, box, done = inbox.get()
            try:
                box["value"] = context.run(fn)
            except BaseException as exc:  # handed to the caller
                box["error"] = exc
            with self._lock:  # idle before the caller hears back: its next call finds us
                stay = len(self._idle) < self.keep
                if stay:
                    self._idle.append(inbox)
            done.set()
            if not stay:
                return


class Watchdog:
    """Calls `on_late()` on a thread of its own when a call running on its caller's thread
    has not returned within its timeout (`watch`), so the caller's thread makes the call
    itself and no hand-off to another thread and back is paid per call.

    One thread serves every watch. It wakes at the earliest deadline, and at least every
    `tick` seconds, so a new watch wakes it only when due before that (a timeout shorter
    than a tick): arming and disarming a watch costs no thread switch. The thread ends
    after `idle_ticks` ticks with nothing to watch and starts again with the next watch."""

    def __init__(self, name: str, tick: float = 1.0, idle_ticks: int = 60) -> None:
        self.name = name
        self.tick = tick
        self.idle_ticks = idle_ticks
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._due: dict[int, tuple[float, Callable[[], Any], contextvars.Context]] = {}
        self._next_id = 0
        self._wakes_at = 0.0  # when the thread wakes next, as it planned
        self._running = False

    def watch(self, timeout: float, on_late: Callable[[], Any]) -> Callable[[], None]:
        """Arm a deadline `timeout` seconds from now; returns what disarms it. `on_late` runs
        on a new thread, in a copy of the caller's context, if the deadline passes first."""
        due = time.monotonic() + timeout
        with self._lock:
            self._next_id += 1
            key = self._next_id
            self._due[key] = (due, on_late, contextvars.copy_context())
            if not self._running:
                self._running = True
                self._wakes_at = due
                threading.Thread(target=self._serve, daemon=True, name=self.name).start()
            elif due < self._wakes_at:
                self._changed.notify()

        def disarm() -> None:
            with self._lock:
                self._due.pop(key, None)

        return disarm

    def _serve(self) -> None:
        idle = 0
        while True:
            late = []
            with self._lock:
                now = time.monotonic()
                for key, (due, on_late, context) in list(self._due.items()):
                    if due <= now:
                        del self._due[key]
                        late.append((on_late, context))
                if not late:
                    idle = 0 if self._due else idle + 1
                    if idle > self.idle_ticks:
                        self._running = False
                        return
                    self._wakes_at = min([now + self.tick, *(due for due, _, _ in self._due.values())])
                    self._changed.wait(self._wakes_at - now)
                    continue
            for on_late, context in late:
                threading.Thread(target=context.run, args=(on_late,), daemon=True,
                                 name=f"{self.name}-late").start()
