"""Actions: side effects that run at most once per run, under an idempotency key (the run
and step). An action's row is inserted before the action runs; a second start of the same
step finds it (`start_action` returns None) and decides from its status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from storage.models import Action as ActionModel
from storage.records import Action
from storage.writer import Writer

ACTIONS: sa.Table = ActionModel.__table__  # type: ignore[attr-defined]

_BY_KEY = sa.select(ACTIONS).where(ACTIONS.c.idempotency_key == sa.bindparam("key"))
_BY_APPROVAL = sa.select(ACTIONS).where(ACTIONS.c.run_id == sa.bindparam("run"),
                                        ACTIONS.c.approval == sa.bindparam("approval"))
_DUE = (sa.select(ACTIONS).where(ACTIONS.c.run_id == sa.bindparam("run"),
                                 ACTIONS.c.status.in_(("due", "started")))
        .order_by(ACTIONS.c.id).limit(1))
_DUE_AT = (sa.select(ACTIONS).where(ACTIONS.c.run_id == sa.bindparam("run"),
                                    ACTIONS.c.node == sa.bindparam("node"),
                                    ACTIONS.c.status == "due").order_by(ACTIONS.c.id).limit(1))
_DONE = ACTIONS.update().where(ACTIONS.c.id == sa.bindparam("action")).values(
    status="done", result=sa.bindparam("done_result", type_=ACTIONS.c.result.type),
    finished_at=sa.bindparam("done_at", type_=ACTIONS.c.finished_at.type))


def start_action(w: Writer, values: dict[str, Any]) -> Action | None:
    """The action's row, new; None when the step has one already (its idempotency key)."""
    return w.insert_once(Action, values, unique="idempotency_key")


def action_by_key(w: Writer, key: str) -> Action:
    row = w.execute(_BY_KEY, {"key": key}).one()
    return w.load(Action, row)


def get_action(w: Writer, action_id: Any) -> Action | None:
    if not isinstance(action_id, int):
        return None
    return w.get(Action, action_id)


def mark_done(w: Writer, action_id: int, result: dict[str, Any], at: datetime) -> None:
    """The action ran: one UPDATE, no row read."""
    w.read(_DONE, {"action": action_id, "done_result": result, "done_at": at})


def action_by_approval(w: Writer, run_id: int, approval: str) -> Action | None:
    row = w.execute(_BY_APPROVAL, {"run": run_id, "approval": approval}).first()
    return None if row is None else w.load(Action, row)


def due_action(conn: Any, run_id: int | None) -> Action | None:
    """The external action a run waits on its caller for, if any."""
    if isinstance(conn, Writer):
        row = conn.execute(_DUE, {"run": run_id}).first()
        return None if row is None else conn.load(Action, row)
    row = conn.execute(_DUE, {"run": run_id}).first()
    return None if row is None else Action(*row)


def due_action_at(w: Writer, run_id: int, node: str) -> Action | None:
    row = w.execute(_DUE_AT, {"run": run_id, "node": node}).first()
    return None if row is None else w.load(Action, row)
