"""The approval API's requests and answers, as pydantic models: the HTTP API (and its
OpenAPI document), the Python client and the MCP server all speak them.

`RunView` is what a caller sees of its run: status, open gates with who can decide,
decisions with who / when / option / reason / edits, the external action with its approved
arguments, and `decision`: the answer in the caller's words (pending, approved, rejected,
timed out, ...), with who gave it and why.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gates.access import through as door_of
from gates.org import Org
from storage.models import Action, Decision, Gate, Run

MAX_SUMMARY = 2000
MAX_ERROR = 4000

Verdict = Literal["ok", "warn", "block"]
Severity = Literal["info", "low", "medium", "high", "critical"]
AnswerState = Literal["pending", "approved", "reported", "completed", "rejected", "timed_out",
                      "cancelled", "failed"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ---------------------------------------------------------------------------------
class StartRun(Request):
    """Start a run of `flow` (its inputs are the tool's arguments)."""

    flow: str = Field(min_length=1, max_length=100, examples=["vendor-payment-api"])
    inputs: dict[str, Any] = Field(default_factory=dict, max_length=200,
                                   examples=[{"vendor": "ACME", "amount": 20000}])
    tool: str | None = Field(default=None, max_length=100, examples=["pay_vendor"],
                             description="the tool or function asking; when given, it must be "
                                         "the one the flow's external step approves")
    summary: str | None = Field(default=None, max_length=MAX_SUMMARY,
                                description="what the agent wants to do and why, shown to the "
                                            "approvers as plain text")
    callback_url: str | None = Field(default=None, max_length=2000,
                                     description="where Baton POSTs signed events of this run; "
                                                 "its host must be in BATON_CALLBACK_HOSTS")


class ReportResult(Request):
    """Report on the approved action: `started` as you begin it (optional: a retried call
    then knows not to run it again), then `succeeded` or `failed`, once."""

    approval: str = Field(min_length=1, max_length=100, description="`action.approval` of the run")
    arguments: dict[str, Any] = Field(max_length=200,
                                      description="the arguments the action runs with: exactly "
                                                  "the approved ones")
    status: Literal["started", "succeeded", "failed"]
    result: Any = Field(default=None, description="what the action returned (JSON)")
    error: str | None = Field(default=None, max_length=MAX_ERROR,
                              description="why it failed (status failed)")


class SubmitSignal(Request):
    """An external agent's signal (the flow declares the agent as `kind: external`)."""

    agent: str = Field(min_length=1, max_length=100)
    verdict: Verdict
    severity: Severity = "info"
    confidence: float = Field(default=1.0, ge=0, le=1)
    summary: str = Field(default="", max_length=MAX_SUMMARY)
    rationale: str = Field(default="", max_length=20000)
    evidence: list[str] = Field(default_factory=list, max_length=50)


class CancelRun(Request):
    reason: str | None = Field(default=None, max_length=MAX_SUMMARY)


# -- answers ----------------------------------------------------------------------------------
class Person(BaseModel):
    id: str = Field(description="the principal: an org user, a Slack id or service:NAME")
    name: str


class GateView(BaseModel):
    id: str = Field(description="the gate's id in the flow")
    kind: str
    status: Literal["open", "decided", "cancelled"]
    title: str
    question: str
    can_decide: list[Person]
    quorum: int
    options: list[str]
    editable: list[str]
    opened_at: datetime
    deadline: datetime | None = Field(description="when the escalation moves on")
    escalation_level: int | None
    outcome: str | None = Field(description="the option that decided it")
    effect: str | None
    closed_by: Literal["person", "baton"] | None
    decided_at: datetime | None


class DecisionView(BaseModel):
    gate: str
    by: Person
    at: datetime
    option: str
    effect: str
    reason: str | None
    edits: dict[str, Any]
    counted: bool = Field(description="false once a later edit dismissed this approval")


class ActionView(BaseModel):
    step: str
    tool: str
    status: Literal["due", "started", "done", "failed", "unknown", "retry", "withdrawn"] = Field(
        description="withdrawn: the run ended before the caller acted on it")
    approval: str | None = Field(description="the approval, bound to these arguments: name it "
                                             "when reporting")
    arguments: dict[str, Any] = Field(description="the approved arguments, edits included")
    idempotency_key: str = Field(description="pass it on to the system the action calls")
    deadline: datetime | None = Field(description="report the result before this")
    attempts: int
    result: Any = None
    error: str | None = None


class Answer(BaseModel):
    """The answer to the caller, in its words."""

    state: AnswerState
    by: list[Person]
    reason: str | None
    at: datetime | None


class RunView(BaseModel):
    id: str = Field(examples=["R-42"])
    flow: str
    status: str = Field(description="running, waiting, held, succeeded, rejected, stopped or failed")
    outcome: str | None
    reason: str | None
    requester: Person
    token: str | None = Field(description="the name of the API token that started it")
    through: str | None = Field(default=None, description=(
        "how it was asked for: api (the REST API), mcp-stdio (`baton mcp`), mcp-http (`/mcp`); "
        "runs from before Baton recorded it say api"))
    tool: str | None
    summary: str | None
    inputs: dict[str, Any] = Field(description="as they are now, after approved edits")
    requested_inputs: dict[str, Any]
    decision: Answer
    action: ActionView | None = Field(description="the external action (the latest one)")
    gates: list[GateView]
    decisions: list[DecisionView]
    created_at: datetime
    finished_at: datetime | None

    @property
    def settled(self) -> bool:
        """The caller has something to do (act on an approval) or nothing left to wait for."""
        return self.decision.state not in ("pending", "reported")


class InputView(BaseModel):
    type: str
    required: bool
    description: str
    choices: list[Any] | None
    min: float | None
    max: float | None
    default: Any = None


class FlowView(BaseModel):
    name: str
    title: str
    description: str
    inputs: dict[str, InputView]
    tools: list[str] = Field(description="the tools its external steps approve")


# -- building a view --------------------------------------------------------------------------
def _utc(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def person(org: Org, principal: str) -> Person:
    return Person(id=principal, name=org.display(principal))


def gate_view(org: Org, gate: Gate) -> GateView:
    return GateView(
        id=gate.key, kind=gate.kind, status=gate.status,  # type: ignore[arg-type]
        title=gate.title, question=gate.question,
        can_decide=[person(org, p) for p in gate.approvers] if gate.status == "open" else [],
        quorum=gate.quorum, options=[o["id"] for o in gate.options], editable=list(gate.editable),
        opened_at=_utc(gate.opened_at), deadline=_utc(gate.next_deadline),  # type: ignore[arg-type]
        escalation_level=gate.esc_level + 1 if gate.chain else None, outcome=gate.outcome,
        effect=gate.effect, closed_by=gate.closed_by,  # type: ignore[arg-type]
        decided_at=_utc(gate.decided_at))


def decision_view(org: Org, decision: Decision, gates: dict[int, Gate]) -> DecisionView:
    gate = gates.get(decision.gate_id)
    return DecisionView(gate=gate.key if gate else str(decision.gate_id),
                        by=person(org, decision.decider), at=_utc(decision.created_at),  # type: ignore[arg-type]
                        option=decision.option, effect=decision.effect, reason=decision.reason,
                        edits=dict(decision.edits), counted=decision.counted)


def action_view(action: Action, step: str) -> ActionView:
    result = action.result.get("value") if isinstance(action.result, dict) else None
    return ActionView(step=step, tool=action.call, status=action.status,  # type: ignore[arg-type]
                      approval=action.approval,
                      arguments=dict(action.arguments), idempotency_key=action.idempotency_key,
                      deadline=_utc(action.deadline), attempts=action.attempts, result=result,
                      error=action.error)


def answer(org: Org, run: Run, gates: list[Gate], decisions: list[Decision],
           action: Action | None, halted: str | None = None,
           now: datetime | None = None) -> Answer:
    """pending | approved (act now) | reported (the run goes on) | completed | rejected (by
    people or by a boundary) | timed_out (nobody decided: the gate failed closed) |
    cancelled | failed. `halted`: why Baton is halted (the emergency stop), if it is: an
    approved action not yet begun is then pending, not to be acted on. `now`: past the
    action's deadline, an approval is no longer one (its outcome is a person's to settle),
    whether or not the timer that hands it over has run yet."""
    counted = [d for d in decisions if d.counted]

    def who(gate: Gate, effect: str) -> tuple[list[Person], str | None, datetime | None]:
        mine = [d for d in counted if d.gate_id == gate.id and d.effect == effect]
        reasons = [d.reason for d in mine if d.reason]
        return ([person(org, d.decider) for d in mine], "; ".join(reasons) or None,
                _utc(gate.decided_at))

    decided = [g for g in gates if g.status == "decided"]
    if run.status == "rejected":
        gate = next((g for g in reversed(decided) if g.effect == "reject"), None)
        if gate is not None and gate.closed_by == "baton":
            return Answer(state="timed_out", by=[], reason=run.reason, at=_utc(gate.decided_at))
        if gate is not None:
            by, reason, at = who(gate, "reject")
            return Answer(state="rejected", by=by, reason=reason or run.reason, at=at)
        return Answer(state="rejected", by=[], reason=run.reason, at=_utc(run.finished_at))
    if run.status == "stopped":  # by someone (cancelled: the reason says who), or by policy
        state = "cancelled" if run.outcome == "stopped" else "rejected"
        return Answer(state=state, by=[], reason=run.reason, at=_utc(run.finished_at))
    if run.status == "failed":
        return Answer(state="failed", by=[], reason=run.reason, at=_utc(run.finished_at))
    approvals: list[Person] = []
    reasons: list[str] = []
    last: datetime | None = None
    for gate in decided:
        if gate.effect == "approve" and gate.kind == "approval":
            by, reason, last = who(gate, "approve")
            approvals += by
            reasons += [reason] if reason else []
    approval_reason = "; ".join(reasons) or None
    if run.status == "succeeded":
        return Answer(state="completed", by=approvals, reason=approval_reason,
                      at=_utc(run.finished_at))
    deadline = _utc(action.deadline) if action is not None else None
    if action is not None and action.status in ("due", "started") and deadline is not None \
            and now is not None and now >= deadline:
        return Answer(state="pending", by=approvals, at=None, reason=(
            f"the step's timeout ran out at {deadline:%Y-%m-%d %H:%M:%S} UTC: do not act on "
            "this approval; a person settles its outcome"))
    if action is not None and action.status == "due" and halted is not None:
        return Answer(state="pending", by=approvals,
                      reason=f"{halted}: do not act until an admin resumes Baton", at=None)
    if action is not None and action.status in ("due", "started"):
        return Answer(state="approved", by=approvals, reason=approval_reason,
                      at=last or _utc(action.started_at))
    if action is not None and action.status in ("done", "failed"):
        return Answer(state="reported", by=approvals, reason=approval_reason,
                      at=_utc(action.finished_at))
    return Answer(state="pending", by=[], reason=None, at=None)


def run_view(org: Org, run: Run, gates: list[Gate], decisions: list[Decision],
             actions: list[Action], external_steps: set[str], halted: str | None = None,
             now: datetime | None = None) -> RunView:
    by_id = {g.id: g for g in gates if g.id is not None}
    external = [a for a in actions if a.node in external_steps]
    action = external[-1] if external else None
    origin = run.origin or {}
    return RunView(
        id=run.ref, flow=run.flow_name, status=run.status, outcome=run.outcome, reason=run.reason,
        requester=person(org, run.requester), token=origin.get("token"),
        through=door_of(origin), tool=origin.get("tool"), summary=origin.get("summary"),
        inputs=dict(run.inputs),
        requested_inputs=dict(run.requested_inputs),
        decision=answer(org, run, gates, decisions, action, halted, now),
        action=action_view(action, action.node) if action else None,
        gates=[gate_view(org, g) for g in gates],
        decisions=[decision_view(org, d, by_id) for d in decisions],
        created_at=_utc(run.created_at),  # type: ignore[arg-type]
        finished_at=_utc(run.finished_at))
