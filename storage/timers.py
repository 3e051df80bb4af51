"""Timers: wake-ups of a gate (escalate, remind, a claim or snooze ending) or of a run (a
settle window, an external action's deadline). A gate's timer carries the gate's token; a
new token makes every older timer of the gate do nothing (`cancel_gate_timers`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from storage.models import Timer as TimerModel
from storage.records import Timer
from storage.writer import Writer

TIMERS: sa.Table = TimerModel.__table__  # type: ignore[attr-defined]

_CANCEL_OF_GATE = (TIMERS.update().where(TIMERS.c.gate_id == sa.bindparam("gate"),
                                         TIMERS.c.status == "pending")
                   .values(status="cancelled"))
_STATE = sa.select(TIMERS.c.status, TIMERS.c.run_id).where(TIMERS.c.id == sa.bindparam("timer"))
_DUE = (sa.select(TIMERS.c.id).where(TIMERS.c.status == "pending",
                                     TIMERS.c.due_at <= sa.bindparam("now", type_=TIMERS.c.due_at.type))
        .order_by(TIMERS.c.due_at).limit(sa.bindparam("limit")))
_PENDING = sa.select(TIMERS.c.id, TIMERS.c.due_at).where(TIMERS.c.status == "pending")


def insert_timer(w: Writer, values: dict[str, Any]) -> Timer:
    return w.insert(Timer, values)


def lock_timer(w: Writer, timer_id: int) -> Timer | None:
    return w.get(Timer, timer_id, lock=True)


def cancel_gate_timers(w: Writer, gate_id: int) -> None:
    """Mark the gate's pending timers cancelled (one UPDATE; a timer this transaction has
    itself changed, the one firing, keeps the status it was given when it is written)."""
    w.read(_CANCEL_OF_GATE, {"gate": gate_id})


def timer_state(conn: Any, timer_id: int) -> tuple[str, int] | None:
    """(status, run id) of a timer, read outside any write."""
    row = conn.execute(_STATE, {"timer": timer_id}).first()
    return None if row is None else (row.status, row.run_id)


def due_timer_ids(conn: Any, now: datetime, limit: int) -> list[int]:
    return list(conn.execute(_DUE, {"now": now, "limit": limit}).scalars())


def pending_timers(conn: Any, until: datetime | None = None) -> list[tuple[int, datetime]]:
    query = _PENDING
    if until is not None:
        query = query.where(TIMERS.c.due_at <= until)
    return [(row.id, row.due_at) for row in conn.execute(query.order_by(TIMERS.c.due_at))]
