"""Runs, the emergency stop and flow versions: every statement on those rows.

A run's row is its state. A write transaction locks it first (`lock_run`), then its gates,
then their timers, so two transactions never wait on each other in a cycle. Reads that
are not part of a write take any connection or session (`conn.execute`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage import dialect
from storage.models import Action, Decision, Gate
from storage.models import FlowVersion as FlowVersionModel
from storage.models import Run as RunModel
from storage.models import StepExecution as StepExecutionModel
from storage.models import SystemState as SystemStateModel
from storage.records import FlowVersion, Run, SystemState
from storage.writer import Writer

RUNS: sa.Table = RunModel.__table__  # type: ignore[attr-defined]
VERSIONS: sa.Table = FlowVersionModel.__table__  # type: ignore[attr-defined]
STATE: sa.Table = SystemStateModel.__table__  # type: ignore[attr-defined]
STEPS: sa.Table = StepExecutionModel.__table__  # type: ignore[attr-defined]

# Built once: building a statement and its cache key costs more than SQLite running it.
_HALT = sa.select(STATE.c.halted, STATE.c.halted_by, STATE.c.halt_reason).where(STATE.c.id == 1)
_VERSION_BY_DIGEST = sa.select(VERSIONS.c.id).where(VERSIONS.c.digest == sa.bindparam("digest"))
_BY_REQUEST = sa.select(RUNS).where(RUNS.c.request_key == sa.bindparam("key"))
_BY_ID = sa.select(RUNS).where(RUNS.c.id == sa.bindparam("run"))
_WITH_STATUS = sa.select(RUNS).where(RUNS.c.status == sa.bindparam("status")).order_by(RUNS.c.id)
_IDS_WITH_STATUS = (sa.select(RUNS.c.id).where(RUNS.c.status == sa.bindparam("status"))
                    .order_by(RUNS.c.id))
_RENEW_LEASE = (RUNS.update().where(RUNS.c.id == sa.bindparam("run"),
                                    RUNS.c.lease_owner == sa.bindparam("owner"))
                .values(lease_until=sa.bindparam("until", type_=RUNS.c.lease_until.type)))


# -- in a write transaction -----------------------------------------------------------------
def lock_run(w: Writer, run_id: int | None) -> Run | None:
    """The run, locked for the rest of the transaction (None: no such run)."""
    return w.get(Run, run_id, lock=True)


def insert_run(w: Writer, values: dict[str, Any]) -> Run | None:
    """A new run row. With a `request_key` the run starts once per request: None when that
    request already started one (in this process or another)."""
    if values.get("request_key") is None:
        return w.insert(Run, values)
    return w.insert_once(Run, values, unique="request_key")


def record_step(w: Writer, run_id: int, node: str, kind: str, visit: int, status: str,
                started_at: Any, finished_at: Any) -> None:
    """One step execution of the run (queued with the transaction's other rows)."""
    w.queue(STEPS, {"run_id": run_id, "node": node, "kind": kind, "visit": visit,
                    "status": status, "detail": {}, "started_at": started_at,
                    "finished_at": finished_at})


def halt_state(w: Writer | Session | Any) -> Any:
    """The emergency stop alone (`halted`, `halted_by`, `halt_reason`): every run start and
    every action checks it."""
    row = (w.read if isinstance(w, Writer) else w.execute)(_HALT).first()
    if row is None:  # created by migration 0001; only a hand-edited database lacks it
        raise RuntimeError("system_state row is missing: run `baton db upgrade`")
    return row


def lock_system_state(w: Writer) -> SystemState:
    """The system row (the emergency stop and the system trace chain's head), locked."""
    state = w.get(SystemState, 1, lock=True)
    if state is None:  # created by migration 0001; only a hand-edited database lacks it
        raise RuntimeError("system_state row is missing: run `baton db upgrade`")
    return state


def flow_version_id(w: Writer, digest: str) -> int | None:
    return w.read(_VERSION_BY_DIGEST, {"digest": digest}).scalar()


def store_flow_version(w: Writer, values: dict[str, Any]) -> int:
    """The id of the stored flow version with `values["digest"]`, inserted unless another
    transaction stored it first."""
    stored = w.insert_once(FlowVersion, values, unique="digest")
    if stored is not None:
        return stored.id
    found = flow_version_id(w, values["digest"])
    assert found is not None
    return found


def renew_leases(w: Writer, held: list[tuple[str, int]], until: Any) -> None:
    """Extend the lease of each (owner, run) still held by that owner."""
    w.execute(_RENEW_LEASE, [{"run": run_id, "owner": owner, "until": until}
                             for owner, run_id in held])


# -- reads --------------------------------------------------------------------------------------
def read_run(conn: Any, run_id: int) -> Run | None:
    row = conn.execute(_BY_ID, {"run": run_id}).first()
    return None if row is None else Run(*row)


def run_for_request(conn: Any, request_key: str) -> Run | None:
    """The run one request (an idempotency key) started, if any."""
    row = conn.execute(_BY_REQUEST, {"key": request_key}).first()
    return None if row is None else Run(*row)


def runs_with_status(conn: Any, status: str) -> list[Run]:
    return [Run(*row) for row in conn.execute(_WITH_STATUS, {"status": status})]


def run_ids_with_status(conn: Any, status: str) -> list[int]:
    return list(conn.execute(_IDS_WITH_STATUS, {"status": status}).scalars())


def flow_version(conn: Any, version_id: int) -> FlowVersion | None:
    row = conn.execute(dialect.by_id(VERSIONS, "any", lock=False), {"row_id": version_id}).first()
    return None if row is None else FlowVersion(*row)


# -- what a run's API view reads --------------------------------------------------------------
def run_by_request(session: Session, request_key: str) -> RunModel | None:
    """The run one request (an idempotency key) started, if any."""
    return session.exec(select(RunModel).where(RunModel.request_key == request_key)).first()


def gates_of_run(session: Session, run_id: int) -> list[Gate]:
    return list(session.exec(select(Gate).where(Gate.run_id == run_id).order_by(col(Gate.id))))


def decisions_of_run(session: Session, run_id: int) -> list[Decision]:
    return list(session.exec(select(Decision).where(Decision.run_id == run_id)
                             .order_by(col(Decision.created_at), col(Decision.id))))


def decisions_of_gate(session: Session, gate_id: int) -> list[Decision]:
    return list(session.exec(select(Decision).where(Decision.gate_id == gate_id)
                             .order_by(col(Decision.id))))


def actions_of_run(session: Session, run_id: int) -> list[Action]:
    return list(session.exec(select(Action).where(Action.run_id == run_id)
                             .order_by(col(Action.id))))
