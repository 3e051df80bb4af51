"""Baton's tables.

Times are naive UTC datetimes. JSON columns hold plain JSON values only. The trace
(`TraceEntry`) is the append-only record a run is audited from; the other tables hold the
state the engine works from and are indexed for the queries Slack and the CLI make.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def _json(**kw: Any) -> Any:
    return Field(sa_type=sa.JSON, **kw)


# Default factories written in Python: pydantic inspects a factory's signature on every
# model construction, and a builtin's (`dict`, `list`) takes ten times as long to inspect.
def _new_dict() -> dict[str, Any]:
    return {}


def _new_list() -> list[Any]:
    return []


class FlowVersion(SQLModel, table=True):
    """A flow definition as validated when a run started; runs keep using it even
    after the file changes. Deduplicated by digest."""

    __tablename__ = "flow_version"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    digest: str = Field(unique=True)
    definition: dict = _json(default_factory=_new_dict)
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
    inputs: dict = _json(default_factory=_new_dict)  # effective values (after approved edits)
    requested_inputs: dict = _json(default_factory=_new_dict)  # as the requester gave them
    cursor: str | None = None  # the node to execute next
    steps_taken: int = 0
    visits: dict = _json(default_factory=_new_dict)  # node -> times entered
    tokens_used: int = 0
    context: dict = _json(default_factory=_new_dict)  # comments, route picks, plan results
    origin: dict = _json(default_factory=_new_dict)  # where it was started (cli, slack, ...)
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
    detail: dict = _json(default_factory=_new_dict)
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
    evidence: list = _json(default_factory=_new_list)
    output: dict = _json(default_factory=_new_dict)  # router / planner extras (branch, subtasks)
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
    approvers: list = _json(default_factory=_new_list)  # resolved principals allowed to decide
    approver_spec: list = _json(default_factory=_new_list)  # as written in the flow
    quorum: int = 1
    forbid_requester: bool = False
    reject_ends: bool = True
    options: list = _json(default_factory=_new_list)
    editable: list = _json(default_factory=_new_list)
    proposal: dict = _json(default_factory=_new_dict)  # edited inputs awaiting approval
    policy: dict = _json(default_factory=_new_dict)  # kind-specific frozen details
    shown: dict = _json(default_factory=_new_dict)  # signals and boundaries the decider saw
    chain: dict = _json(default_factory=_new_dict)  # frozen escalation chain
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
    edits: dict = _json(default_factory=_new_dict)
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
    result: dict = _json(default_factory=_new_dict)
    error: str | None = None
    # external actions: the approved arguments, the approval id bound to them (a digest of
    # run, step, attempt, tool and arguments), and when the caller's report is due
    arguments: dict = _json(default_factory=_new_dict)
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
    data: dict = _json(default_factory=_new_dict)
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
    payload: dict = _json(default_factory=_new_dict)
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
    payload: dict = _json(default_factory=_new_dict)
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


class SlackOutbox(SQLModel, table=True):
    """A Web API call the bot owes Slack. Written in the same transaction as the change it
    reports, sent after commit, retried until Slack takes it; in order per lane (a run's
    thread, a person's home tab)."""

    __tablename__ = "slack_outbox"
    __table_args__ = (sa.Index("ix_slack_outbox_pending", "status", "id"),
                      # "is a newer call of this key waiting?", asked before each such call
                      sa.Index("ix_slack_outbox_supersede", "supersede", "id"),
                      sa.Index("ix_slack_outbox_ref", "ref"),
                      sa.Index("ix_slack_outbox_run_id", "run_id"))

    id: int | None = Field(default=None, primary_key=True)
    run_id: int | None = Field(default=None, foreign_key="run.id")
    lane: str
    method: str
    payload: dict = _json(default_factory=_new_dict)
    ref: str | None = None  # remember the sent message's channel and ts under this key
    thread_ref: str | None = None  # post as a reply to the message stored under this key
    target_ref: str | None = None  # chat.update / chat.delete the message under this key
    supersede: str | None = None  # a newer row with the same key replaces this one unsent
    status: str = "pending"  # pending | sending | unsure | sent | failed | superseded
    claimed_by: str | None = None  # the sender (host:pid:token) making the call right now
    claim_until: datetime | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime
    sent_at: datetime | None = None


class SlackRef(SQLModel, table=True):
    """Where a message the bot sent lives, so later messages can thread under it or
    update it."""

    __tablename__ = "slack_ref"

    key: str = Field(primary_key=True)
    run_id: int | None = Field(default=None, foreign_key="run.id", index=True)
    channel: str
    ts: str
    created_at: datetime


class SlackInbox(SQLModel, table=True):
    """A request from Slack that changes something (a decision, a run to start), stored
    before it is acknowledged: if the process dies after answering Slack, another process
    (or this one, restarted) finishes it. Keyed by Slack's trigger or event id, so a request
    delivered twice is handled once."""

    __tablename__ = "slack_inbox"
    __table_args__ = (sa.Index("ix_slack_inbox_status", "status", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    kind: str  # command | event | action:<action id> | view:<callback id> (bot.app.SlackBot.finishers)
    payload: dict = _json(default_factory=_new_dict)
    status: str = "pending"  # pending | done | failed
    claimed_by: str | None = None
    claim_until: datetime | None = None
    attempts: int = 0
    error: str | None = None
    received_at: datetime
    processed_at: datetime | None = None


class ApiToken(SQLModel, table=True):
    """A scoped API token (`baton tokens create`). Only the token's SHA-256 is kept; the
    callback signing secret is kept as is, since Baton signs with it."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    principal: str  # an org person, or a `service:NAME` principal
    flows: list = _json(default_factory=_new_list)  # the flows it may start
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
    body: dict = _json(default_factory=_new_dict)
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
