"""Scripted failures, so reliability tests can make Slack slow, rate-limited or down.

A plan is consulted once per request, before anything else happens: a faulted request
never changes the workspace (except a pure delay, which only makes Slack slow). Queued
faults for one method win over those for every method (`"*"`), and `down()` wins over both
until `up()`.

Besides Web API method names, faults may name the other things the emulator serves:
`"upload_url"` (files upload v2's upload POST) and `"response_url"`.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

ANY = "*"

ERROR_FOR_STATUS = {429: "ratelimited", 500: "internal_error", 502: "bad_gateway",
                    503: "service_unavailable", 504: "request_timeout"}


@dataclass(frozen=True)
class Fault:
    """How to mistreat one request.

    - `status`: answer with this HTTP status (429 also sends `Retry-After: retry_after`);
    - `error`: answer HTTP 200 `{"ok": false, "error": error}`, as Slack does for API errors;
    - `delay`: wait this many seconds first; alone, the request then succeeds (Slack is slow);
    - `drop`: close the connection without answering (the client sees a connection error);
    - `hang`: answer nothing until Slack is back `up()`, then fail (a Slack whose front door
      takes connections while nothing behind it answers: clients meet their own timeouts).
    """

    status: int | None = None
    retry_after: int | None = None
    delay: float = 0.0
    drop: bool = False
    error: str | None = None
    hang: bool = False

    @property
    def fails(self) -> bool:
        return self.drop or self.status is not None or self.error is not None

    def describe(self) -> str:
        """What the fault does, in a few words (for the sandbox's call log)."""
        parts = [f"delay {self.delay:g}s"] if self.delay else []
        if self.hang:
            parts.append("no answer until Slack is back")
        if self.drop:
            parts.append("connection dropped")
        if self.status is not None:
            retry = f" (Retry-After: {self.retry_after})" if self.retry_after is not None else ""
            parts.append(f"HTTP {self.status}{retry}")
        if self.error:
            parts.append(self.error)
        return ", ".join(parts)

    def body(self) -> dict[str, object]:
        code = self.error or ERROR_FOR_STATUS.get(self.status or 0, "fatal_error")
        return {"ok": False, "error": code}


class FaultPlan:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: dict[str, deque[Fault]] = {}
        self._down: Fault | None = None

    def next(self, method: str = ANY, *, times: int = 1, status: int | None = None,
             retry_after: int | None = None, delay: float = 0.0, drop: bool = False,
             error: str | None = None) -> Fault:
        """Mistreat the next `times` requests to `method` (or to anything, with `"*"`).

        A 429 without `retry_after` advertises 1 second, since Slack always sends Retry-After.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        fault = Fault(status=status, retry_after=retry_after, delay=delay, drop=drop, error=error)
        if not fault.fails and not delay:
            raise ValueError("a fault needs a status, an error, a delay or drop=True")
        with self._lock:
            self._queued.setdefault(method, deque()).extend([fault] * times)
        return fault

    def down(self, *, status: int = 503, drop: bool = False, hang: bool = False) -> None:
        """Fail every request (with `status`, or by dropping the connection) until `up()`;
        with `hang`, each request first waits, unanswered, until `up()`."""
        with self._lock:
            self._down = Fault(status=None if drop else status, drop=drop, hang=hang)

    def up(self) -> None:
        with self._lock:
            self._down = None

    @property
    def is_down(self) -> bool:
        with self._lock:
            return self._down is not None

    def clear(self) -> None:
        """Forget queued faults and come back up."""
        with self._lock:
            self._queued.clear()
            self._down = None

    def pending(self, method: str = ANY) -> int:
        with self._lock:
            return len(self._queued.get(method, ()))

    def take(self, method: str) -> Fault | None:
        """The fault for this request to `method`, if any; consumes a queued one."""
        with self._lock:
            if self._down is not None:
                return self._down
            for key in (method, ANY):
                queue = self._queued.get(key)
                if queue:
                    return queue.popleft()
        return None
