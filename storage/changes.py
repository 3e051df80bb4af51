"""The event table: every committed change a person, an agent or a timer makes to a run
writes an event there (`queue_event`, in the change's own transaction), in whichever
process it happens. The dispatcher (orchestrator/events.py) delivers each to the durable
sink once and in order per run (`undelivered_events`, `take_event`, `delivery_failed`), and
waiters in one process learn of changes made by another (a replica, the CLI) from it
(`events_since`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

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


def queue_event(w: Writer, run_id: int | None, kind: str, seq: int, extra: dict[str, Any],
                at: datetime) -> None:
    """Record an event for the notifiers with the transaction's other queued rows (a
    transactional outbox: it commits with the change it reports, or not at all). It
    points at trace entry `seq` of the run's chain (the system chain without a run) and
    stores only `extra`, what that entry does not say."""
    w.queue(_EVENTS, {"run_id": run_id, "kind": kind, "seq": seq, "payload": extra,
                      "created_at": at, "delivered_at": None, "attempts": 0,
                      "next_attempt_at": None, "last_error": None})


def undelivered_events(session: Session, limit: int) -> list[Any]:
    """(id, run_id, next_attempt_at) of the oldest undelivered events."""
    return list(session.exec(
        select(Event.id, Event.run_id, Event.next_attempt_at)
        .where(col(Event.delivered_at).is_(None))
        .order_by(col(Event.id)).limit(limit)))


def take_event(session: Session, event_id: int) -> Event | None:
    """The event, to deliver in this write transaction. On PostgreSQL its row is locked and
    None means another worker holds it now (SKIP LOCKED); on SQLite the write transaction
    holds the database's only write lock. Delivered: `delivered_at` set, `attempts` + 1."""
    query = select(Event).where(Event.id == event_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.exec(query).first()


def mark_delivered(session: Session, event: Event, at: datetime) -> None:
    event.delivered_at = at
    event.attempts += 1
    session.add(event)


def delivery_failed(session: Session, event_id: int, error: str, retry_at: Any) -> int | None:
    """Count a failed delivery and set when to try again (`retry_at(attempts)`); the attempts
    so far, or None when the event is gone."""
    event = session.get(Event, event_id)
    if event is None:
        return None
    event.attempts += 1
    event.next_attempt_at = retry_at(event.attempts)
    event.last_error = error[:500]
    session.add(event)
    return event.attempts
