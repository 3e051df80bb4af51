"""Which runs changed lately, read from the event table: every committed change a person,
an agent or a timer makes to a run writes an event there, in whichever process it happens.
Waiters in one process learn of changes made by another (a replica, the CLI) from this."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from storage.models import Event
from storage.writer import Writer

_EVENTS = Event.__table__  # type: ignore[attr-defined]
_SINCE = (sa.select(_EVENTS.c.id, _EVENTS.c.run_id).where(_EVENTS.c.id > sa.bindparam("after"))
          .order_by(_EVENTS.c.id).limit(sa.bindparam("limit")))
_LATEST = sa.select(sa.func.max(_EVENTS.c.id))


def latest_event_id(session: Session) -> int:
    return int(session.connection().execute(_LATEST).scalar() or 0)


def events_since(session: Session, after: int, limit: int = 1000) -> list[tuple[int, int | None]]:
    """(event id, run id) of the events after `after`, oldest first."""
    found = session.connection().execute(_SINCE, {"after": after, "limit": limit})
    return [(row.id, row.run_id) for row in found]


def queue_event(w: Writer, run_id: int | None, kind: str, payload: dict[str, Any],
                at: datetime) -> None:
    """Record an event for the notifiers with the transaction's other queued rows (a
    transactional outbox: it commits with the change it reports, or not at all)."""
    w.queue(_EVENTS, {"run_id": run_id, "kind": kind, "payload": payload, "created_at": at,
                      "delivered_at": None, "attempts": 0, "next_attempt_at": None,
                      "last_error": None})
