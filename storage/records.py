"""The rows the engine works on, as small typed records (slotted dataclasses).

A record holds one row of its table, every column, by the column's name. A write
transaction (`storage.writer.Writer`) keeps a snapshot of each record it loaded and writes
the columns that differ from it, so the engine changes a run by assigning to it. JSON
columns are replaced with a new value, never changed in place: the snapshot holds the same
object, and a dict changed in place would compare equal to it and not be written.

`storage.models` stays the schema (the SQLModel tables, Alembic's source); a test at import
time below keeps each record's fields equal to its table's columns.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa

from storage import models


@dataclass(slots=True, eq=False)
class Run:
    table: ClassVar[sa.Table] = models.Run.__table__  # type: ignore[attr-defined]
    id: int
    flow_name: str
    flow_version_id: int
    status: str
    requester: str
    inputs: dict[str, Any]
    requested_inputs: dict[str, Any]
    cursor: str | None
    steps_taken: int
    visits: dict[str, Any]
    tokens_used: int
    context: dict[str, Any]
    origin: dict[str, Any]
    request_key: str | None
    outcome: str | None
    reason: str | None
    error: str | None
    lease_owner: str | None
    lease_until: datetime | None
    trace_seq: int
    trace_head: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def ref(self) -> str:
        return f"R-{self.id}"


@dataclass(slots=True, eq=False)
class Gate:
    table: ClassVar[sa.Table] = models.Gate.__table__  # type: ignore[attr-defined]
    id: int
    run_id: int
    node: str
    visit: int
    key: str
    kind: str
    status: str
    outcome: str | None
    effect: str | None
    closed_by: str | None
    title: str
    question: str
    approvers: list[Any]
    approver_spec: list[Any]
    quorum: int
    forbid_requester: bool
    reject_ends: bool
    options: list[Any]
    editable: list[Any]
    proposal: dict[str, Any]
    policy: dict[str, Any]
    shown: dict[str, Any]
    chain: dict[str, Any]
    esc_level: int
    esc_cycle: int
    esc_state: str | None
    claimed_by: str | None
    claim_until: datetime | None
    snoozed_until: datetime | None
    next_deadline: datetime | None
    timer_token: str | None
    opened_at: datetime
    decided_at: datetime | None
    version: int


@dataclass(slots=True, eq=False)
class Decision:
    table: ClassVar[sa.Table] = models.Decision.__table__  # type: ignore[attr-defined]
    id: int
    gate_id: int
    run_id: int
    decider: str
    option: str
    effect: str
    reason: str | None
    edits: dict[str, Any]
    counted: bool
    created_at: datetime


@dataclass(slots=True, eq=False)
class Action:
    table: ClassVar[sa.Table] = models.Action.__table__  # type: ignore[attr-defined]
    id: int
    run_id: int
    node: str
    idempotency_key: str
    call: str
    status: str
    attempts: int
    result: dict[str, Any]
    error: str | None
    arguments: dict[str, Any]
    approval: str | None
    deadline: datetime | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(slots=True, eq=False)
class Timer:
    table: ClassVar[sa.Table] = models.Timer.__table__  # type: ignore[attr-defined]
    id: int
    run_id: int
    gate_id: int | None
    kind: str
    due_at: datetime
    token: str
    status: str
    payload: dict[str, Any]
    fired_at: datetime | None


@dataclass(slots=True, eq=False)
class SystemState:
    table: ClassVar[sa.Table] = models.SystemState.__table__  # type: ignore[attr-defined]
    id: int
    halted: bool
    halted_by: str | None
    halted_at: datetime | None
    halt_reason: str | None
    trace_seq: int
    trace_head: str


@dataclass(slots=True, eq=False)
class FlowVersion:
    table: ClassVar[sa.Table] = models.FlowVersion.__table__  # type: ignore[attr-defined]
    id: int
    name: str
    digest: str
    definition: dict[str, Any]
    source: str | None
    created_at: datetime


@dataclass(slots=True, eq=False)
class TraceEntry:
    """One entry of a chain, as read (entries are only ever inserted, as queued rows)."""

    table: ClassVar[sa.Table] = models.TraceEntry.__table__  # type: ignore[attr-defined]
    id: int
    run_id: int | None
    chain: str
    seq: int
    kind: str
    actor: str
    node: str | None
    data: dict[str, Any]
    created_at: datetime
    hash: str


@dataclass(slots=True, eq=False)
class Event:
    """One row of the event outbox, as the dispatcher takes it (storage.changes)."""

    table: ClassVar[sa.Table] = models.Event.__table__  # type: ignore[attr-defined]
    id: int
    run_id: int | None
    kind: str
    seq: int | None
    payload: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None


Record = Run | Gate | Decision | Action | Timer | SystemState | FlowVersion | TraceEntry | Event
RECORDS: tuple[type[Any], ...] = (Run, Gate, Decision, Action, Timer, SystemState, FlowVersion,
                                  TraceEntry, Event)
# Each record's field names, in the table's column order (what the snapshot compares).
FIELDS: dict[type[Any], tuple[str, ...]] = {
    record: tuple(f.name for f in fields(record)) for record in RECORDS}

for _record, _names in FIELDS.items():
    _columns = tuple(c.name for c in _record.table.columns)
    if _names != _columns:  # a column added to models.py and not here (or the reverse)
        raise RuntimeError(f"storage.records.{_record.__name__} has {_names}, "
                           f"its table {_columns}")
