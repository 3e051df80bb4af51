"""Baton's tables.

Times are naive UTC datetimes. JSON columns hold plain JSON values only. The trace
(`TraceEntry`) is the append-only record a run is audited from; the other tables hold the
state the engine works from and are indexed for the queries Slack and the CLI make.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.columns import json_field, new_dict, new_list

# The Slack adapter's tables, found here with every other table.
from storage.slack_models import SlackInbox as SlackInbox
from storage.slack_models import SlackOutbox as SlackOutbox
from storage.slack_models import SlackRef as SlackRef


class FlowVersion(SQLModel, table=True):
    """A flow definition as validated when a run started; runs keep using it even
    after the file changes. Deduplicated by digest."""

    __tablename__ = "flow_version"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    digest: str = Field(unique=True)
    definition: dict = json_field(default_factory=new_dict)
    source: str | None = None
    created_at: datetime


class Run(SQLModel, table=True):
    __tablename__ = "run"
    __table_args__ = (
        sa.Index("ix_run_flow_created", "flow_name", "created_at"),
        sa.Index("ix_run_requester_created", "requester", "created_at"),
        sa.Index("ix_run_status", "status"),
        sa.UniqueConstraint("request_key", name="uq_run_request_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    flow_name: str
    flow_version_id: int = Field(foreign_key="flow_version.id")
    status: str  # running | waiting | held | succeeded | failed | stopped | rejected
    requester: str
    inputs: dict = json_field(default_factory=new_dict)  # effective values (after approved edits)
    requested_inputs: dict = json_field(default_factory=new_dict)  # as the requester gave them
    cursor: str | None = None  # the node to execute next
    steps_taken: int = 0
    visits: dict = json_field(default_factory=new_dict)  # node -> times entered
    tokens_used: int = 0
    context: dict = json_field(default_factory=new_dict)  # comments, route picks, plan results
    origin: dict = json_field(default_factory=new_dict)  # where it was started (cli, slack, ...)
    request_key: str | None = None  # the Slack request that started it (unique: starts once)
    outcome: str | None = None
    reason: str | None = None
    error: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    trace_seq: int = 0
    trace_head: str = ""
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"R-{self.id}"


class StepExecution(SQLModel, table=True):
    __tablename__ = "step_execution"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    node: str
    kind: str
    visit: int = 1
    status: str  # done | waiting | failed | skipped
    detail: dict = json_field(default_factory=new_dict)
    started_at: datetime
    finished_at: datetime | None = None


class Signal(SQLModel, table=True):
    __tablename__ = "signal"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    node: str
    agent: str
    agent_kind: str
    status: str  # ok | failed
    verdict: str | None = None  # ok | warn | block
    severity: str | None = None
    confidence: float | None = None
    summary: str = ""
    rationale: str = ""
    evidence: list = json_field(default_factory=new_list)
    output: dict = json_field(default_factory=new_dict)  # router / planner extras (branch, subtasks)
    error: str | None = None
    attempts: int = 1
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    cost: float = 0.0
    model: str | None = None
    started_at: datetime
    created_at: datetime


class Gate(SQLModel, table=True):
    """A point where a run waits for people: an approval, a conflict to settle, a
    boundary override, an action whose outcome is unknown. Policy details are frozen
    into the row when the gate opens."""

    __tablename__ = "gate"
    __table_args__ = (
        sa.Index("ix_gate_status_run", "status", "run_id"),
        sa.UniqueConstraint("run_id", "node", "visit", name="uq_gate_run_node_visit"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id")
    node: str
    visit: int = 1
    key: str  # the id people use: the flow's gate id
    kind: str  # approval | conflict | boundary | action | agent
    status: str  # open | decided | cancelled
    outcome: str | None = None  # the winning option id
    effect: str | None = None  # what the outcome did: approve | reject | request_changes | retry
    closed_by: str | None = None  # "person" or "baton" (an escalation that failed closed)
    title: str = ""
    question: str = ""
    approvers: list = json_field(default_factory=new_list)  # resolved principals allowed to decide
    approver_spec: list = json_field(default_factory=new_list)  # as written in the flow
    quorum: int = 1
    forbid_requester: bool = False
    reject_ends: bool = True
    options: list = json_field(default_factory=new_list)
    editable: list = json_field(default_factory=new_list)
    proposal: dict = json_field(default_factory=new_dict)  # edited inputs awaiting approval
    policy: dict = json_field(default_factory=new_dict)  # kind-specific frozen details
    shown: dict = json_field(default_factory=new_dict)  # signals and boundaries the decider saw
    chain: dict = json_field(default_factory=new_dict)  # frozen escalation chain
    esc_level: int = 0
    esc_cycle: int = 0
    esc_state: str | None = None  # waiting | claimed | snoozed | held | done
    claimed_by: str | None = None
    claim_until: datetime | None = None
    snoozed_until: datetime | None = None
    next_deadline: datetime | None = None
    timer_token: str | None = None
    opened_at: datetime
    decided_at: datetime | None = None
    version: int = 0


class GateApprover(SQLModel, table=True):
    """One person who may decide an open gate: the gate's `approvers` list as rows, while
    the gate is open. A person's App Home is read again on every change to one of their
    gates; with these rows that read follows an index from the person to their gates,
    instead of looking into the JSON list of every open gate (at 800 open gates that look
    cost five times the rest of the read).

    The database keeps these rows: triggers on `gate` (migration 0012) rewrite a gate's rows
    whenever its `approvers` or `status` is written, by Baton or by hand, so they cannot
    fall behind the list. Nothing in Baton writes them; the list stays what the engine
    decides by and the trace records."""

    __tablename__ = "gate_approver"
    # the triggers rewrite a gate's rows by its id (the key leads with the person)
    # SQLite: the key is the table (WITHOUT ROWID), so a row is written to two b-trees, not
    # three, when a gate opens or closes
    __table_args__ = (sa.Index("ix_gate_approver_gate", "gate_id"), {"sqlite_with_rowid": False})

    principal: str = Field(primary_key=True)
    gate_id: int = Field(foreign_key="gate.id", primary_key=True, ondelete="CASCADE")


class Decision(SQLModel, table=True):
    __tablename__ = "decision"
    __table_args__ = (
        sa.UniqueConstraint("gate_id", "decider", name="uq_decision_gate_decider"),
        sa.Index("ix_decision_decider_created", "decider", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    gate_id: int = Field(foreign_key="gate.id")
    run_id: int = Field(foreign_key="run.id", index=True)
    decider: str
    option: str
    effect: str  # approve | reject | request_changes
    reason: str | None = None
    edits: dict = json_field(default_factory=new_dict)
    counted: bool = True  # false once dismissed by a later edit of the proposal
    created_at: datetime


class Action(SQLModel, table=True):
    """A side effect of a run, at most once per run and step: one Baton calls (`action`
    steps), or one the caller performs after Baton approved it (`external` steps)."""

    __tablename__ = "action"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    node: str
    idempotency_key: str = Field(unique=True)
    call: str  # the callable (action), or the caller's tool (external)
    # started | done | failed | unknown | retry; external: due (approved, not reported) |
    # withdrawn (the run ended first)
    status: str
    attempts: int = 1
    result: dict = json_field(default_factory=new_dict)
    error: str | None = None
    # external actions: the approved arguments, the approval id bound to them (a digest of
    # run, step, attempt, tool and arguments), and when the caller's report is due
    arguments: dict = json_field(default_factory=new_dict)
    approval: str | None = Field(default=None, unique=True)
    deadline: datetime | None = None
    started_at: datetime
    finished_at: datetime | None = None


class TraceEntry(SQLModel, table=True):
    """Append-only and hash-chained per chain (a run's ref, or "system")."""

    __tablename__ = "trace_entry"
    __table_args__ = (
        # the only index: a run's entries are read by its chain (its ref), in order
        sa.UniqueConstraint("chain", "seq", name="uq_trace_chain_seq"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int | None = Field(default=None, foreign_key="run.id")
    chain: str
    seq: int
    kind: str
    actor: str
    node: str | None = None
    data: dict = json_field(default_factory=new_dict)
    created_at: datetime
    hash: str


class Timer(SQLModel, table=True):
    """A wake-up the scheduler owes the engine. The row is the truth; APScheduler only
    wakes the process up at `due_at`. `token` must match the gate's current token or
    the timer does nothing when it fires."""

    __tablename__ = "timer"
    __table_args__ = (sa.Index("ix_timer_status_due", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    gate_id: int | None = Field(default=None, foreign_key="gate.id")
    kind: str  # escalate | remind | claim_expired | snooze_ended | settle
    due_at: datetime
    token: str
    status: str = "pending"  # pending | fired | stale | cancelled
    payload: dict = json_field(default_factory=new_dict)
    fired_at: datetime | None = None


class Event(SQLModel, table=True):
    """Transactional outbox of domain events for notifiers, written with the state change,
    delivered after commit in order per run. It points at the trace entry it reports (`seq`
    on the run's chain, or the system chain); `payload` holds only what that entry does not
    say (events from before 0011 have no `seq` and carry everything in `payload`)."""

    __tablename__ = "event"
    __table_args__ = (sa.Index("ix_event_pending", "delivered_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int | None = Field(default=None, foreign_key="run.id")
    kind: str
    seq: int | None = None
    payload: dict = json_field(default_factory=new_dict)
    created_at: datetime
    delivered_at: datetime | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None


class SystemState(SQLModel, table=True):
    """One row: the global emergency stop, and the head of the "system" trace chain."""

    __tablename__ = "system_state"

    id: int = Field(default=1, primary_key=True)
    halted: bool = False
    halted_by: str | None = None
    halted_at: datetime | None = None
    halt_reason: str | None = None
    trace_seq: int = 0
    trace_head: str = ""


class ApiToken(SQLModel, table=True):
    """A scoped API token (`baton tokens create`). Only the token's SHA-256 is kept; the
    callback signing secret is kept as is, since Baton signs with it."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    principal: str  # an org person, or a `service:NAME` principal
    flows: list = json_field(default_factory=new_list)  # the flows it may start
    token_hash: str = Field(unique=True)
    hint: str  # the token's first characters, to tell tokens apart in `baton tokens list`
    callback_secret: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class CallbackDelivery(SQLModel, table=True):
    """A signed POST Baton owes a caller's `callback_url`: written in the transaction that
    handles the event it reports, sent after commit, retried with backoff until delivered
    or `give_up_at`. `event_id` is what the receiver de-duplicates on."""

    __tablename__ = "callback_delivery"
    __table_args__ = (sa.Index("ix_callback_delivery_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    token_id: int = Field(foreign_key="api_token.id")
    url: str
    kind: str  # action.due | gate.decided | run.finished
    body: dict = json_field(default_factory=new_dict)
    status: str = "pending"  # pending | sending | delivered | failed
    attempts: int = 0
    next_attempt_at: datetime | None = None
    claimed_by: str | None = None
    claim_until: datetime | None = None
    last_status: int | None = None  # the receiver's last HTTP status
    last_error: str | None = None
    created_at: datetime
    give_up_at: datetime
    delivered_at: datetime | None = None
