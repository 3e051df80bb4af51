"""Gates and the decisions taken on them: every statement on those rows.

A gate is locked after its run (`storage.runs.lock_run`). One decision per person and
gate: the unique (gate, decider) key makes a second one, from a double click in another
process, fail at its INSERT, which `insert_decision` runs at once.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from storage import dialect
from storage.models import Decision as DecisionModel
from storage.models import Gate as GateModel
from storage.models import GateApprover
from storage.records import Decision, Gate
from storage.rows import complete
from storage.writer import Writer

GATES: sa.Table = GateModel.__table__  # type: ignore[attr-defined]
DECISIONS: sa.Table = DecisionModel.__table__  # type: ignore[attr-defined]
# who may decide each open gate, as rows kept by the database (storage.models.GateApprover)
APPROVERS: sa.Table = GateApprover.__table__  # type: ignore[attr-defined]

_OPEN = (sa.select(GATES).where(GATES.c.run_id == sa.bindparam("run"), GATES.c.status == "open")
         .order_by(GATES.c.id))
_ANY_OPEN = (sa.select(GATES.c.id).where(GATES.c.run_id == sa.bindparam("run"),
                                         GATES.c.status == "open").limit(1))
_OF_RUN_NEWEST_FIRST = (sa.select(GATES).where(GATES.c.run_id == sa.bindparam("run"))
                        .order_by(GATES.c.id.desc()))
_DECIDED = (sa.select(GATES).where(GATES.c.run_id == sa.bindparam("run"),
                                   GATES.c.status == "decided").order_by(GATES.c.id))
_OF_GATE = (sa.select(DECISIONS).where(DECISIONS.c.gate_id == sa.bindparam("gate"))
            .order_by(DECISIONS.c.id))
_OF_RUN = (sa.select(DECISIONS).where(DECISIONS.c.run_id == sa.bindparam("run"))
           .order_by(DECISIONS.c.id))
_COUNTED_APPROVALS_OF_OTHERS = (
    sa.select(DECISIONS).where(DECISIONS.c.gate_id == sa.bindparam("gate"),
                               DECISIONS.c.counted.is_(True), DECISIONS.c.effect == "approve",
                               DECISIONS.c.decider != sa.bindparam("user"))
    .order_by(DECISIONS.c.id))
_LAST_CHANGE_REQUEST = (
    sa.select(DECISIONS).where(DECISIONS.c.gate_id == sa.bindparam("gate"),
                               DECISIONS.c.effect == "request_changes")
    .order_by(DECISIONS.c.id.desc()).limit(1))


def insert_gate(w: Writer, values: dict[str, Any]) -> Gate:
    """Open a gate: its row, at once (its id goes into the trace entry about it)."""
    return w.insert(Gate, values)


def lock_gate(w: Writer, gate_id: int | None) -> Gate | None:
    return w.get(Gate, gate_id, lock=True)


def open_gates(w: Writer, run_id: int) -> list[Gate]:
    """The run's open gates, oldest first."""
    return [w.load(Gate, row) for row in w.execute(_OPEN, {"run": run_id})]


def has_open_gate(w: Writer, run_id: int) -> bool:
    """Whether the run has an open gate row (without writing what is pending: usually it has
    none, and its queued rows then go in one batch at commit)."""
    return w.read(_ANY_OPEN, {"run": run_id}).first() is not None


def gates_newest_first(w: Writer, run_id: int) -> list[Gate]:
    return [w.load(Gate, row) for row in w.execute(_OF_RUN_NEWEST_FIRST, {"run": run_id})]


def decided_gates(w: Writer, run_id: int) -> list[Gate]:
    return [w.load(Gate, row) for row in w.execute(_DECIDED, {"run": run_id})]


def decisions_of_gate(w: Writer, gate_id: int) -> list[Decision]:
    return [w.load(Decision, row) for row in w.execute(_OF_GATE, {"gate": gate_id})]


def decisions_of_run(w: Writer, run_id: int) -> list[Decision]:
    return [w.load(Decision, row) for row in w.execute(_OF_RUN, {"run": run_id})]


def counted_approvals_of_others(w: Writer, gate_id: int, user: str) -> list[Decision]:
    """The approvals that count on the gate, but `user`'s."""
    return [w.load(Decision, row)
            for row in w.execute(_COUNTED_APPROVALS_OF_OTHERS, {"gate": gate_id, "user": user})]


def last_change_request(w: Writer, gate_id: int) -> Decision | None:
    row = w.execute(_LAST_CHANGE_REQUEST, {"gate": gate_id}).first()
    return None if row is None else w.load(Decision, row)


def insert_decision(w: Writer, values: dict[str, Any]) -> dict[str, Any]:
    """Record one person's decision at once (a second one by the same person fails here
    with IntegrityError); the row as inserted, without its id."""
    row = complete(DecisionModel, values)
    w.read(dialect.insert(DECISIONS), row)
    return row


_LAST_COUNTED = (sa.select(DECISIONS).where(DECISIONS.c.gate_id == sa.bindparam("gate"),
                                            DECISIONS.c.counted.is_(True))
                 .order_by(DECISIONS.c.id.desc()).limit(1))


def last_counted_decision(w: Writer, gate_id: int) -> Decision | None:
    row = w.execute(_LAST_COUNTED, {"gate": gate_id}).first()
    return None if row is None else w.load(Decision, row)


# -- reads outside a write ----------------------------------------------------------------------
_ALL_OPEN = sa.select(GATES).where(GATES.c.status == "open").order_by(GATES.c.id)
_RUNS = sa.table("run", sa.column("id"), sa.column("requester"))
_OPEN_WITH_REQUESTER = (sa.select(GATES, _RUNS.c.requester)
                        .join(_RUNS, GATES.c.run_id == _RUNS.c.id)
                        .where(GATES.c.status == "open").order_by(GATES.c.id))


def read_open_gates(conn: Any, run_id: int | None = None) -> list[Gate]:
    """Open gates, oldest first: all of them, or one run's."""
    if run_id is None:
        return [Gate(*row) for row in conn.execute(_ALL_OPEN)]
    return [Gate(*row) for row in conn.execute(_OPEN, {"run": run_id})]


def read_open_gates_with_requester(conn: Any) -> list[tuple[Gate, str]]:
    """Every open gate with the requester of its run, oldest first."""
    return [(Gate(*row[:-1]), row[-1]) for row in conn.execute(_OPEN_WITH_REQUESTER)]
