"""The event table: every committed change a person, an agent or a timer makes to a run
writes an event there (`queue_event`, in the change's own transaction), in whichever
process it happens. The dispatcher (orchestrator/events.py) delivers each to the durable
sink once and in order per run (`undelivered_events`, `take_event`, `delivery_failed`), and
waiters in one process learn of changes made by another (a replica, the CLI) from it
(`events_since`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage import dialect
from storage.records import Event
from storage.writer import Writer

_EVENTS = Event.table
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


def undelivered_events(conn: Any, limit: int) -> list[Any]:
    """(id, run_id, next_attempt_at) of the oldest undelivered events (`conn`: what
    `Database.read()` gives, or a `Writer`)."""
    run = conn.execute if isinstance(conn, Writer) else _core(conn).execute
    return list(run(_UNDELIVERED, {"limit": limit}))


def take_event(w: Writer, event_id: int) -> Event | None:
    """The event, to deliver in this write transaction. On PostgreSQL its row is locked and
    None means another worker holds it now (SKIP LOCKED: two dispatchers never deliver one
    event twice); on SQLite the write transaction holds the database's only write lock.
    Delivered: `delivered_at` set, `attempts` + 1 (`mark_delivered`)."""
    statement = _TAKE_SKIP_LOCKED if dialect.locks_rows(w.dialect_name) else _TAKE
    row = w.execute(statement, {"event": event_id}).first()
    return None if row is None else Event(*row)


def mark_delivered(w: Writer, event: Event, at: datetime) -> None:
    w.execute(_DELIVERED, {"event": event.id, "at": at})
    event.delivered_at = at
    event.attempts += 1


def delivery_failed(w: Writer, event_id: int, error: str,
                    retry_at: Callable[[int], datetime]) -> int | None:
    """Count a failed delivery and set when to try again (`retry_at(attempts)`); the attempts
    so far, or None when the event is gone. The count is read locked (PostgreSQL: FOR
    UPDATE, waiting for a worker delivering it now) so the backoff follows it."""
    statement = _ATTEMPTS_LOCKED if dialect.locks_rows(w.dialect_name) else _ATTEMPTS
    attempts = w.execute(statement, {"event": event_id}).scalar()
    if attempts is None:
        return None
    attempts += 1
    w.execute(_FAILED, {"event": event_id, "attempts_now": attempts,
                        "retry_at": retry_at(attempts), "error": error[:500]})
    return int(attempts)


def _core(session: Any) -> Any:
    """The Core connection of an ORM session (its `execute` costs more Python), else `conn`."""
    return session.connection() if isinstance(session, Session) else session


_UNDELIVERED = (sa.select(_EVENTS.c.id, _EVENTS.c.run_id, _EVENTS.c.next_attempt_at)
                .where(_EVENTS.c.delivered_at.is_(None))
                .order_by(_EVENTS.c.id).limit(sa.bindparam("limit")))
_TAKE = sa.select(_EVENTS).where(_EVENTS.c.id == sa.bindparam("event"))
_TAKE_SKIP_LOCKED = dialect.for_update_skip_locked(_TAKE, dialect.POSTGRESQL)
_DELIVERED = (_EVENTS.update().where(_EVENTS.c.id == sa.bindparam("event"))
              .values(delivered_at=sa.bindparam("at"), attempts=_EVENTS.c.attempts + 1))
_ATTEMPTS = sa.select(_EVENTS.c.attempts).where(_EVENTS.c.id == sa.bindparam("event"))
_ATTEMPTS_LOCKED = dialect.for_update(_ATTEMPTS, dialect.POSTGRESQL)
_FAILED = (_EVENTS.update().where(_EVENTS.c.id == sa.bindparam("event"))
           .values(attempts=sa.bindparam("attempts_now"),
                   next_attempt_at=sa.bindparam("retry_at"), last_error=sa.bindparam("error")))
