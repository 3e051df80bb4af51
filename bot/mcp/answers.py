"""What the MCP tools say back, written for a model to act on: pure functions from the
approval service's models (`RunView`, `FlowView`, a trace export) to structured results.

Every answer leads with `next`, one instruction: wait, act with exactly these arguments,
or do not act (and why). Approved arguments are the ones to use, edits included; a
rejection carries the decider's reason. Text from people and agents is carried as JSON
values, never spliced into the instruction unquoted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from gates.access import through_words
from orchestrator.approval_views import AnswerState, FlowView, InputView, RunView

MAX_SHOWN = 300  # characters of one value quoted in a highlight
MAX_HIGHLIGHTS = 25


class Change(BaseModel):
    requested: Any = Field(description="what you asked for")
    approved: Any = Field(description="what a person approved instead")


class ApprovalAnswer(BaseModel):
    """Where a request for approval stands, and what to do now."""

    run: str = Field(description="the run's id: pass it to wait_for_approval, report_result, get_run")
    flow: str
    action: str | None = Field(description="the action (tool) the flow approves")
    state: AnswerState = Field(description="pending: wait; approved: act now, once; reported or "
                                           "completed: done; rejected, timed_out, cancelled, "
                                           "failed: do not act")
    next: str = Field(description="what to do now")
    arguments: dict[str, Any] | None = Field(
        description="when approved: the arguments to act with, exactly (edits included)")
    approval: str | None = Field(description="when approved: the approval id report_result names")
    changed: dict[str, Change] = Field(description="arguments a person changed")
    decided_by: list[str]
    reason: str | None = Field(description="why they decided so (a rejection's reason)")
    can_decide: list[str] = Field(description="while pending: who can decide now")
    waiting_at: str | None = Field(description="while pending: the question people are asked")
    escalates_at: datetime | None = Field(description="while pending: when more people are asked")
    report_by: datetime | None = Field(description="when approved: report the result before this")
    idempotency_key: str | None = Field(description="when approved: pass it on to the system "
                                                    "the action calls, if it takes one")


class RunReport(ApprovalAnswer):
    """A run in full: the answer, plus its status, what was asked and its trace's highlights."""

    status: str = Field(description="running, waiting, held, succeeded, rejected, stopped or failed")
    requested_by: str
    asked_through: str | None = Field(description="api, mcp-stdio or mcp-http: how the request "
                                                  "came to Baton")
    requested_arguments: dict[str, Any]
    action_status: str | None = Field(description="due, started, done, failed, unknown, retry, "
                                                  "withdrawn")
    result: Any = Field(default=None, description="what you reported")
    highlights: list[str] = Field(description="the decision trace's main entries, oldest first")


class FlowEntry(BaseModel):
    flow: str
    title: str
    description: str
    actions: list[str] = Field(description="the action names request_approval takes for it")
    arguments: dict[str, InputView] = Field(description="what request_approval's arguments hold")


class FlowListing(BaseModel):
    flows: list[FlowEntry]
    next: str


class ReportAnswer(ApprovalAnswer):
    """What Baton made of a report."""

    recorded: bool = Field(description="true: the report is in the run's trace")


# -- answers --------------------------------------------------------------------------------
def _q(value: Any) -> str:
    """A value from a person or an agent, quoted as JSON (newlines and quotes escaped)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "...\""


def _names(people: list[str]) -> str:
    return ", ".join(people) or "nobody yet"


def _next(view: RunView, wait_s: float) -> str:
    action = view.tool or "the action"
    answer = view.decision
    by = _names([p.name for p in answer.by])
    reason = f" Their reason: {_q(answer.reason)}." if answer.reason else ""
    state = answer.state
    if state == "pending":
        gate = next((g for g in view.gates if g.status == "open"), None)
        who = (f"{_names([p.name for p in gate.can_decide])} can decide"
               if gate else "Baton is still checking the request")
        return (f"Not decided yet: do not perform {action}. {who}. Call "
                f"wait_for_approval(run={_q(view.id)}) to keep waiting (each call waits up to "
                f"{wait_s:g} s); people may take minutes or hours, so you may tell the user who is "
                "deciding and go on with other work meanwhile.")
    if state == "approved":
        changed = _changes(view)
        edit = (f" A person changed {', '.join(sorted(changed))}: use the approved values, not "
                "the ones you asked for." if changed else "")
        return (f"Approved by {by}.{reason} Perform {action} once, with exactly `arguments` "
                f"below.{edit} Then call report_result(run={_q(view.id)}, approval=the "
                "`approval` below, arguments=the same `arguments`, and result=what it returned, "
                "or error=why it failed).")
    if state == "reported":
        return "Your report is recorded and the run goes on. Nothing more to do."
    if state == "completed":
        return "Done: the run finished after your report. Nothing more to do."
    if state == "rejected":
        who = f"Rejected by {by}." if answer.by else "Refused by the flow's policy."
        return (f"{who}{reason or f' Why: {_q(view.reason)}.'} Do NOT perform {action}. Tell "
                "the user why; do not ask again with the same request unchanged.")
    if state == "timed_out":
        return (f"Nobody decided in time, so the request failed closed ({_q(view.reason)}). Do "
                f"NOT perform {action}. Tell the user; ask again only if it is still needed.")
    if state == "cancelled":
        return f"Cancelled ({_q(answer.reason)}). Do NOT perform {action}."
    return f"The run failed ({_q(answer.reason)}). Do NOT perform {action}."


def _changes(view: RunView) -> dict[str, Change]:
    arguments = view.action.arguments if view.action else view.inputs
    return {name: Change(requested=view.requested_inputs.get(name), approved=value)
            for name, value in arguments.items()
            if name in view.requested_inputs and view.requested_inputs[name] != value}


def approval_answer(view: RunView, wait_s: float) -> ApprovalAnswer:
    approved = view.decision.state == "approved" and view.action is not None
    gate = next((g for g in view.gates if g.status == "open"), None)
    pending = view.decision.state == "pending"
    return ApprovalAnswer(
        run=view.id, flow=view.flow, action=view.tool, state=view.decision.state,
        next=_next(view, wait_s),
        arguments=dict(view.action.arguments) if approved and view.action else None,
        approval=view.action.approval if approved and view.action else None,
        changed=_changes(view), decided_by=[p.name for p in view.decision.by],
        reason=view.decision.reason or (view.reason if view.decision.state != "pending" else None),
        can_decide=[p.name for p in gate.can_decide] if gate and pending else [],
        waiting_at=(gate.question or gate.title) if gate and pending else None,
        escalates_at=gate.deadline if gate and pending else None,
        report_by=view.action.deadline if approved and view.action else None,
        idempotency_key=view.action.idempotency_key if approved and view.action else None)


def report_answer(view: RunView, wait_s: float) -> ReportAnswer:
    return ReportAnswer(**approval_answer(view, wait_s).model_dump(), recorded=True)


def run_report(view: RunView, trace: Mapping[str, Any], wait_s: float) -> RunReport:
    return RunReport(
        **approval_answer(view, wait_s).model_dump(), status=view.status,
        requested_by=view.requester.name, asked_through=view.through,
        requested_arguments=dict(view.requested_inputs),
        action_status=view.action.status if view.action else None,
        result=view.action.result if view.action else None,
        highlights=highlights(view, trace.get("entries") or []))


def flow_listing(flows: list[FlowView]) -> FlowListing:
    entries = [FlowEntry(flow=f.name, title=f.title, description=f.description, actions=f.tools,
                         arguments=f.inputs)
               for f in flows]
    if not entries:
        hint = ("This token may start no flow: ask the operator for one that names the flow "
                "(`baton tokens create NAME --as PRINCIPAL --flows FLOW`).")
    else:
        hint = ("Before an action a flow covers, call request_approval(flow, action, arguments, "
                "summary) with `action` one of the flow's actions and `arguments` as the flow "
                "lists them; act only on an approval, with the approved arguments.")
    return FlowListing(flows=entries, next=hint)


# -- the trace's highlights -----------------------------------------------------------------
Highlight = Callable[[dict[str, Any], str], str | None]


def _boundary(d: dict[str, Any], who: str) -> str | None:
    if d.get("passed"):
        return None
    return f"boundary {_q(d.get('boundary'))} violated: {_q(d.get('message') or d.get('check'))}"


def _decision(d: dict[str, Any], who: str) -> str:
    text = f"{who} chose {d.get('option')} at gate {_q(d.get('gate'))}"
    if d.get("reason"):
        text += f", saying {_q(d['reason'])}"
    for name, change in (d.get("edits") or {}).items():
        text += f"; changed {name} from {_q(change.get('from'))} to {_q(change.get('to'))}"
    return text


def _run_started(d: dict[str, Any], who: str) -> str:
    origin = d.get("origin") if isinstance(d.get("origin"), dict) else {}
    door = through_words(origin)
    how = f" through {door} with token {_q(origin.get('token'))}" if door else ""
    return f"asked by {who}{how} with {_q(d.get('inputs'))}"


HIGHLIGHTS: dict[str, Highlight] = {
    "run_started": _run_started,
    "boundary": _boundary,
    "gate_opened": lambda d, who: f"gate {_q(d.get('gate'))} opened: {_q(d.get('title'))}",
    "escalated": lambda d, who: (f"gate {_q(d.get('gate'))} escalated to level {d.get('level')} "
                                 f"({', '.join(map(str, d.get('notify') or []))})"),
    "decision": _decision,
    "decision_refused": lambda d, who: f"{who} was refused at gate {_q(d.get('gate'))}: {_q(d.get('why'))}",
    "gate_decided": lambda d, who: f"gate {_q(d.get('gate'))} decided: {d.get('outcome')}",
    "action_due": lambda d, who: (f"{d.get('tool')} approved with {_q(d.get('arguments'))} "
                                  f"(approval {d.get('approval')}, attempt {d.get('attempt')})"),
    "action_started": lambda d, who: f"{who} said it started {d.get('call')}",
    "action_done": lambda d, who: f"{who} reported {d.get('tool')} done: {_q(d.get('result'))}",
    "action_failed": lambda d, who: f"{who} reported {d.get('tool')} failed: {_q(d.get('error'))}",
    "action_report_refused": lambda d, who: f"a report by {who} was refused: {_q(d.get('why'))}",
    "action_unknown": lambda d, who: f"outcome of {_q(d.get('action'))} unknown: {_q(d.get('why'))}",
    "run_held": lambda d, who: f"held: {_q(d.get('why'))}",
    "run_finished": lambda d, who: f"finished {d.get('status')}: {_q(d.get('why'))}",
}


def highlights(view: RunView, entries: list[dict[str, Any]]) -> list[str]:
    """The entries that say what happened to the request, with people's names."""
    names = {view.requester.id: view.requester.name}
    for decision in view.decisions:
        names[decision.by.id] = decision.by.name
    for gate in view.gates:
        names.update({p.id: p.name for p in gate.can_decide})
    found = []
    for entry in entries:
        describe = HIGHLIGHTS.get(str(entry.get("kind")))
        data = entry.get("data")
        if describe is None or not isinstance(data, dict):
            continue
        actor = str(entry.get("actor") or "Baton")
        line = describe(data, names.get(actor, actor))
        if line:
            found.append(f"{str(entry.get('at', ''))[:19]}Z {line}")
    return found[-MAX_HIGHLIGHTS:]
