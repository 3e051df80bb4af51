"""Requests from Slack that change something are stored before they are acknowledged.

Slack needs its answer within three seconds; the work (recording a decision, starting a
run) follows the answer. Between the two the process may die: Slack has its 200 and
nobody would ever do the work. So the request is written here first (one small insert,
keyed by Slack's trigger or event id, which also makes a redelivered request a no-op),
then acknowledged, then processed. A request whose processor died is finished by the
next sweep of any replica.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select

from orchestrator.owners import Owners
from storage import rows
from storage.engine import Database
from storage.models import SlackInbox

CLAIM = timedelta(seconds=60)


class Inbox:
    def __init__(self, db: Database, clock: Any) -> None:
        self.db = db
        self.clock = clock
        self.owners = Owners()
        self.owner = self.owners.take()

    def accept(self, key: str, kind: str, payload: dict[str, Any]) -> int | None:
        """Store a request, claimed by this process. None when the key was seen before."""
        now = self.clock.now()
        with self.db.write(urgent=True) as s:  # Slack waits for this one: it goes first
            # One statement: a key accepted before, here or by another replica at the same
            # moment, inserts nothing.
            return rows.insert_new(s, SlackInbox, {
                "key": key, "kind": kind, "payload": payload, "received_at": now,
                "claimed_by": self.owner, "claim_until": now + CLAIM, "attempts": 1}, unique="key")

    def finish(self, row_id: int, error: str | None = None) -> None:
        with self.db.write() as s:
            row = s.get(SlackInbox, row_id)
            if row is None:
                return
            row.status = "failed" if error else "done"
            row.error = error[:1000] if error else None
            row.processed_at = self.clock.now()
            row.claimed_by = None
            s.add(row)

    def _abandoned(self, row: SlackInbox, now: datetime) -> bool:
        if row.claimed_by is None or row.claim_until is None or row.claim_until <= now:
            return True
        return row.claimed_by != self.owner and self.owners.dead(row.claimed_by)

    def claim_abandoned(self, limit: int = 50) -> list[SlackInbox]:
        """Take over requests whose processor died or timed out."""
        now = self.clock.now()
        with self.db.read() as s:
            ids = list(s.exec(select(SlackInbox.id).where(col(SlackInbox.status) == "pending")
                              .order_by(col(SlackInbox.id)).limit(limit)))
        taken: list[SlackInbox] = []
        for row_id in ids:
            with self.db.write() as s:
                query = select(SlackInbox).where(SlackInbox.id == row_id)
                if self.db.is_postgresql:
                    query = query.with_for_update(skip_locked=True)
                row = s.exec(query).first()
                if row is None or row.status != "pending" or not self._abandoned(row, now):
                    continue
                row.claimed_by = self.owner
                row.claim_until = now + CLAIM
                row.attempts += 1
                s.add(row)
                taken.append(row)
        return taken
