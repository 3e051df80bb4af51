"""A thread pool that knows whether it is busy, so a shutdown (or a test) can wait until
the work it accepted is done."""

from __future__ import annotations

import threading
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

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name=self.name)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

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
            self._wake.wait(self.every)
            self._wake.clear()
