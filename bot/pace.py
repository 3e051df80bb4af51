"""How often a Slack call of one kind may go to one place.

A person's App Home is published at most once a second (`HOME_EVERY`). Changes that come
closer together wait for the next publish, which is rendered when it goes and so shows
them all: an approver in a busy team sees several of their gates change each second, and
Slack allows `views.publish` about 100 times a minute for a whole workspace (rate limit
tier 4). The first change after a quiet second is published at once.
"""

from __future__ import annotations

import time

HOME_EVERY = 1.0


class Pace:
    """At most one call per lane every `every` seconds, by this process's clock. Kept in
    memory: after a restart, or in another replica, a lane's next call goes at once."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._last: dict[str, float] = {}  # lane -> time.monotonic() of its last call

    def wait(self, lane: str) -> float:
        """Seconds until the lane's next call may go (0: now)."""
        last = self._last.get(lane)
        if last is None:
            return 0.0
        wait = last + self.every - time.monotonic()
        if wait <= 0:
            del self._last[lane]  # only lanes called within the last `every` are kept
            return 0.0
        return wait

    def went(self, lane: str) -> None:
        self._last[lane] = time.monotonic()
