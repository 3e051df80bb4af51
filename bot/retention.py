"""Deleting what Slack delivery is done with.

Every Web API call the bot owes Slack (`slack_outbox`), every request Slack sends it
(`slack_inbox`), every domain event (`event`) and every callback owed to an API caller
(`callback_delivery`) is stored before it is acted on, so that
nothing is lost in a crash, a retry or a Slack outage. Once the call is sent, the request
handled and the event delivered, the row has a short use left: a request Slack delivers
again (its retries come within the hour) is recognised by its key, a reply is sent once
per request. After that it is only bytes, most of a Slack deployment's per run (Block Kit
and raw requests); the decision trace keeps what matters of them, and `slack_ref` keeps
where each message lives, so later updates still find it.

`Retention.sweep()` deletes the rows done with for longer than the window. Each table is
walked by id in small batches, one short write transaction each (Slack requests waiting
for the write lock are not held up), from where the previous sweep stopped, up to the
first row younger than the window. A row still open at that age (a call Slack has refused
all along) and a failed one (kept for whoever looks into it) are passed over, and so is
each table's newest row, so that no id is ever handed out again. Deleting,
not emptying, is what gives the space back on SQLite: a row made smaller leaves its page
as it was, and rows only ever append to the table's last pages; pages emptied by deletes
are reused by every table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog

from storage import retention
from storage.engine import Database

log = structlog.get_logger("baton.retention")


@dataclass
class _Walk:
    """One table (storage.retention.TABLES) and how far the walk got (every row up to
    `after` has been looked at)."""

    table: str
    after: int = 0


class Retention:
    def __init__(self, db: Database, clock: Any, window: timedelta | None, *,
                 batch: int = 500, batches_per_sweep: int = 20) -> None:
        """`window`: how long a row is kept after it was written (None: for good)."""
        self.db = db
        self.clock = clock
        self.window = window
        self.batch = batch
        self.batches_per_sweep = batches_per_sweep
        self._walks = [_Walk(name) for name in retention.TABLES]

    def sweep(self) -> int:
        """Delete the rows done with for longer than the window, at most
        `batches_per_sweep` batches per table; returns how many were deleted."""
        if self.window is None:
            return 0
        cutoff = self.clock.now() - self.window
        deleted = 0
        for walk in self._walks:
            for _ in range(self.batches_per_sweep):
                count, more = self._batch(walk, cutoff)
                deleted += count
                if not more:
                    break
        if deleted:
            log.info("delivered_rows_deleted", count=deleted,
                     window_days=self.window / timedelta(days=1))
        return deleted

    def _batch(self, walk: _Walk, cutoff: Any) -> tuple[int, bool]:
        """The next batch of `walk`'s table: (rows deleted, whether to go on)."""
        with self.db.read() as s:
            rows, newest = retention.rows_after(s, walk.table, walk.after, cutoff, self.batch)
            # The newest row stays, and the walk waits before it: SQLite gives a new row the
            # highest id + 1, and an id handed out again would be behind the walk for good.
        old: list[int] = []
        for row_id, is_old in rows:
            if not is_old or newest is None or row_id >= newest:
                break  # rows are written in id order: the rest are younger too
            old.append(row_id)
        if not old:
            return 0, False
        with self.db.writer() as w:
            deleted = retention.delete_done(w, walk.table, old)
        walk.after = old[-1]
        return deleted, len(old) == len(rows) == self.batch
