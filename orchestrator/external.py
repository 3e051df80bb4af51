"""The `external` step: an action the caller performs, not Baton.

An agent outside Baton (through the API, the Python client or MCP) starts a run of a flow
an operator wrote. When the run reaches its external step, Baton answers "approved, with
exactly these arguments": the run's inputs as they are after every edit and every check
before this step. The approval is an id bound to the run, the step, the attempt, the tool
and those arguments, and it is consumed once: the caller reports the result with that id and
the arguments it used; a second report, or a report with other arguments, is refused and
traced. A report that never comes makes the outcome unknown once the step's `timeout` has
passed (a durable run timer), and a person settles it, as for an action found in flight
after a crash.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gates.durations import format_duration
from gates.org import Org
from orchestrator import gating
from orchestrator.program import Node, Program
from orchestrator.runtime import Finish, Goto, Transition, Tx, Wait, emergency_stop, hold_if_halted
from orchestrator.spec import InputSpec
from storage import actions
from storage.records import Action, Timer
from storage.runs import halt_state
from storage.trace import canonical_json

TIMER_KIND = "external_timeout"
FINISHED = ("succeeded", "rejected", "stopped", "failed")
MAX_TRACED_RESULT = 4000  # characters of a reported result's JSON kept in the trace entry


def performed_by_caller(program: Program) -> bool:
    """Whether the flow has an external step: only an API caller can act on it and report."""
    return any(node.kind == "external" for node in program.nodes.values())


def approved_arguments(tx: Tx, node: Node) -> dict[str, Any]:
    """The tool's arguments: the named inputs (default: all) as the run has them now."""
    names = node.spec.arguments if node.spec.arguments is not None else list(tx.program.flow.inputs)
    return {name: tx.run.inputs[name] for name in names if name in tx.run.inputs}


def approval_id(run: str, step: str, attempt: int, tool: str, arguments: Mapping[str, Any]) -> str:
    """The approval, bound to exactly these arguments: a report must name it."""
    body = {"run": run, "step": step, "attempt": attempt, "tool": tool, "arguments": arguments}
    return "ap_" + hashlib.sha256(canonical_json(body).encode()).hexdigest()[:40]


def halt_reason(org: Org, state: Any) -> str | None:
    """Why no action may begin now (`state`: the emergency stop, `halt_state`), or None."""
    if not state.halted:
        return None
    return f"Baton is halted ({emergency_stop(org, state)})"


def step_external(tx: Tx, node: Node) -> Transition:
    spec = node.spec
    held = hold_if_halted(tx)
    if held:
        return held
    key = f"{tx.run.ref}:{node.key}"
    arguments = approved_arguments(tx, node)
    deadline = tx.now + spec.timeout
    started = actions.start_action(tx.w, {
        "run_id": tx.run.id, "node": node.key, "idempotency_key": key, "call": spec.tool,
        "status": "due", "arguments": arguments,
        "approval": approval_id(tx.run.ref, node.key, 1, spec.tool, arguments),
        "deadline": deadline, "started_at": tx.now})
    if started is not None:
        action_id, attempt, why = started.id, 1, None
    else:
        action = actions.action_by_key(tx.w, key)
        if action.status == "done":
            tx.record("action_skipped", {"action": node.label, "idempotency_key": key,
                                        "why": "the caller already reported it for this run "
                                               "(at most once)"}, node=node.key)
            return Goto(node.next)
        # Only a person's "it did not run: ask again" (status retry) leads back here.
        action.attempts += 1
        action.status = "due"
        action.arguments = arguments
        action.approval = approval_id(tx.run.ref, node.key, action.attempts, spec.tool, arguments)
        action.deadline = deadline
        action.error = None
        action_id, attempt, why = action.id, action.attempts, "a person asked the caller to run it again"
    approval = approval_id(tx.run.ref, node.key, attempt, spec.tool, arguments)
    gating.add_timer(tx, None, TIMER_KIND, deadline, token=approval, node=node.key,
                     action_id=action_id)
    data: dict[str, Any] = {"action": node.label, "tool": spec.tool, "arguments": arguments,
                            "approval": approval, "idempotency_key": key,
                            "deadline": deadline.isoformat(), "attempt": attempt}
    if why:
        data["why"] = why
    tx.record("action_due", data, node=node.key, event="action_due")
    return Wait()


# -- the caller's report -------------------------------------------------------------------------
@dataclass(frozen=True)
class Report:
    """What a caller says: the approval it acts on, the arguments it uses, and `outcome`:
    `started` (it is performing the action now: a retried call must not perform it again),
    `succeeded` (with its result) or `failed` (with the error)."""

    approval: str
    arguments: Mapping[str, Any]
    outcome: str  # started | succeeded | failed
    result: Any = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome == "succeeded"


@dataclass(frozen=True)
class ReportRefused:
    """A report that contradicts what Baton holds (already reported, other arguments, not
    approved yet, the run over): it changes nothing but the trace. `later`: the same report
    may be accepted later (`started` during an emergency stop)."""

    message: str
    later: bool = False


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _traced_result(value: Any) -> Any:
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= MAX_TRACED_RESULT:
        return value
    return text[:MAX_TRACED_RESULT] + f"... [{len(text) - MAX_TRACED_RESULT} more characters]"


def _same_value(spec: InputSpec | None, approved: Any, given: Any) -> bool:
    """Whether a reported argument is the approved one. Numbers compare by value (an amount
    approved as 18000.0 may come back as 18000); anything else must be exactly as approved:
    "18000" is text, not an amount, and text that differs in any character (a control
    character, another Unicode form) is other text, whatever a parser would clean it to."""
    kind = spec.type if spec is not None else None
    if kind in ("number", "integer") and isinstance(approved, int | float) \
            and not isinstance(approved, bool):
        if isinstance(given, bool) or not isinstance(given, int | float):
            return False
        try:
            return float(given) == float(approved) and math.isfinite(float(given))
        except OverflowError:  # an integer too large for a float is no approved amount
            return False
    try:
        return canonical_json(given) == canonical_json(approved)
    except ValueError:  # NaN or infinity: never an approved value
        return False


def _same_arguments(tx: Tx, action: Action, reported: Mapping[str, Any]) -> str | None:
    """Why `reported` are not the approved arguments, or None when they are (`_same_value`)."""
    approved = dict(action.arguments)
    if set(reported) != set(approved):
        missing = sorted(set(approved) - set(reported))
        extra = sorted(set(reported) - set(approved))
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"not approved: {', '.join(extra)}"] if extra else [])
        return "the arguments are not the approved ones (" + "; ".join(parts) + ")"
    inputs = tx.program.flow.inputs
    for name, value in approved.items():
        given = reported[name]
        if not _same_value(inputs.get(name), value, given):
            return (f"{name} was approved as {value!r}, reported as {given!r}; report exactly "
                    "the approved arguments (the run's `action.arguments`)")
    return None


def record_report(tx: Tx, report: Report, by: str) -> ReportRefused | Transition:
    """Apply a caller's report in the run's write transaction: the step's transition, or
    why it is refused (traced, nothing else changes)."""
    run = tx.run
    action = actions.action_by_approval(tx.w, run.id, report.approval)
    why: str | None = None
    if action is None:
        if run.status in FINISHED:
            why = f"{run.ref} already finished ({run.status}); there is nothing to report"
        elif actions.due_action(tx.w, run.id) is not None:
            why = (f"{report.approval!r} is not the approval {run.ref} gave; report the one in "
                   "the run's `action`")
        else:
            why = (f"{run.ref} has not approved an action yet (it is {run.status}); wait for "
                   "the approval, then act and report")
    elif action.status in ("done", "failed"):
        by_whom = action.result.get("reported_by") if isinstance(action.result, dict) else None
        when = f"{action.finished_at:%Y-%m-%d %H:%M:%S} UTC" if action.finished_at else "before"
        why = (f"the result of {run.ref} '{action.node}' was already reported at {when}"
               + (f" by {tx.org.display(by_whom)}" if by_whom else "")
               + "; an approval is consumed once")
    elif run.status in FINISHED:
        why = (f"{run.ref} already finished ({run.status}: {run.reason}); the approval is "
               "withdrawn")
    elif action.status == "started" and report.outcome == "started":
        when = f"{action.finished_at:%Y-%m-%d %H:%M:%S} UTC" if action.finished_at else "before"
        why = (f"the action of {run.ref} '{action.node}' was started at {when}; it may have run, "
               "so it is not started twice: report its result")
    elif action.status == "unknown":
        why = (f"no result came within the step's timeout, so the outcome of {run.ref} "
               f"'{action.node}' was declared unknown; a person settles it in Slack (this "
               "report is kept in the trace for them)")
    elif action.deadline is not None and tx.now >= _aware(action.deadline):
        # The deadline is the deadline, not the moment the timer got to it (a busy or
        # halted server runs it later): after it, the outcome is unknown and a person's.
        why = (f"the step's timeout ran out at {_aware(action.deadline):%Y-%m-%d %H:%M:%S} UTC "
               f"before this report, so the outcome of {run.ref} '{action.node}' is unknown; "
               "do not act on this approval: a person settles it in Slack (this report is "
               "kept in the trace for them)")
    elif action.status not in ("due", "started") or run.status != "waiting" \
            or run.cursor != action.node:
        why = f"{run.ref} is not waiting for the result of '{action.node}' ({run.status})"
    else:
        why = _same_arguments(tx, action, report.arguments)
    later = False
    if why is None and report.outcome == "started":
        # The emergency stop holds every action, the caller's too: it may not begin one
        # now. A result is still recorded: the action ran (or was begun) before.
        halted = halt_reason(tx.org, halt_state(tx.w))
        if halted is not None:
            why, later = (f"{halted}; do not start the action: wait, and start it once an "
                          "admin resumes Baton"), True
    if why is not None:
        data: dict[str, Any] = {"approval": report.approval, "why": why,
                                "arguments": _traced_result(dict(report.arguments)),
                                "outcome": report.outcome}
        if report.succeeded:
            data["result"] = _traced_result(report.result)
        elif report.outcome == "failed":
            data["error"] = report.error
        tx.record("action_report_refused", data, actor=by, node=action.node if action else None)
        return ReportRefused(why, later)
    assert action is not None
    node = tx.node(action.node)
    if report.outcome == "started":
        action.status = "started"
        action.finished_at = tx.now  # when it was started; replaced when it is reported
        tx.record("action_started", {"action": node.label, "call": action.call,
                                    "idempotency_key": action.idempotency_key,
                                    "approval": action.approval, "reported_by": by},
                 actor=by, node=node.key)
        return Wait()
    action.status = "done" if report.succeeded else "failed"
    action.result = {"value": report.result, "reported_by": by}
    action.error = None if report.succeeded else (report.error or "the caller reported a failure")
    action.finished_at = tx.now
    data = {"action": node.label, "tool": action.call, "idempotency_key": action.idempotency_key,
            "approval": action.approval, "arguments": dict(action.arguments),
            "reported_by": by, "attempts": action.attempts}
    if report.succeeded:
        tx.record("action_done", {**data, "result": _traced_result(report.result)},
                  actor=by, node=node.key, event="action_reported")
        return Goto(node.next)
    tx.record("action_failed", {**data, "error": action.error}, actor=by, node=node.key,
              event="action_reported")
    return Finish("failed", "action_failed", f"{action.call} ('{node.label}') failed, as "
                                             f"{tx.org.display(by)} reported: {action.error}")


# -- no report in time ----------------------------------------------------------------------------
def on_timeout(tx: Tx, timer: Timer) -> Transition | None:
    """The report of an external action did not come in time: its outcome is unknown, and a
    person settles it (or the run fails, as the step says). None: the timer is stale."""
    from orchestrator.steps import unknown_action  # steps imports this module

    run = tx.run
    node_key = timer.payload.get("node")
    action = actions.get_action(tx.w, timer.payload.get("action_id"))
    if (action is None or action.status not in ("due", "started") or action.approval != timer.token
            or run.status != "waiting" or run.cursor != node_key):
        return None
    node = tx.node(node_key)
    waited = format_duration(node.spec.timeout)
    transition = unknown_action(tx, node, action, f"the caller did not report the result of "
                                                  f"{action.call} within {waited}")
    return transition


def withdraw(tx: Tx, node_key: str) -> None:
    """The run ends while its caller was to act: an approval not yet acted on is withdrawn
    (one the caller said it started stays so: it may have run)."""
    action = actions.due_action_at(tx.w, tx.run.id, node_key)
    if action is not None:
        action.status = "withdrawn"
        action.finished_at = tx.now


def due_action(conn: Any, run_id: int | None) -> Action | None:
    """The external action a run waits on its caller for, if any."""
    return actions.due_action(conn, run_id)
