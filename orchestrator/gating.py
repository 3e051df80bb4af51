"""Gates in the engine: opening them, recording decisions, escalating.

The policy (who may decide, how votes count, what the chain does next) is in `gates/`;
this module applies it to stored state inside the run's write transaction, traces every
decision and refusal, and writes the timers escalation needs.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from gates import escalation as esc
from gates.boundaries import BoundaryCheck
from gates.deciders import editors_barred
from gates.deciders import eligible as eligible  # where the engine and bot/ find them
from gates.deciders import excluded as excluded
from gates.options import BUILTIN_OPTIONS, Option
from orchestrator.failpoints import crash_point
from orchestrator.program import Node
from orchestrator.runtime import Tx
from storage import gates, timers
from storage.records import Gate, Timer


# -- options ------------------------------------------------------------------------------
def gate_options(spec_options: Sequence[Any], reason_required: Sequence[str] | bool) -> list[Option]:
    options = []
    for item in spec_options:
        if isinstance(item, str):
            base = BUILTIN_OPTIONS[item]
            option_id, label, effect, style = item, base["label"], base["effect"], base["style"]
        else:
            option_id, effect, style = item.id, item.effect, item.style
            label = item.label or item.id.replace("_", " ").capitalize()
        required = (reason_required is True
                    or (isinstance(reason_required, list | tuple) and option_id in reason_required))
        options.append(Option(option_id, label, effect, style, bool(required)))
    return options


def options_of(gate: Gate) -> list[Option]:
    return [Option.from_dict(o) for o in gate.options]


# -- opening --------------------------------------------------------------------------------
def shown_to_decider(tx: Tx, agents: list[str] | None) -> dict[str, Any]:
    """What a gate shows the people deciding it: signals, boundaries checked, inputs."""
    signals = tx.signals()
    names = agents if agents is not None else list(signals)
    shown = {"signals": [
        {"agent": n, "verdict": signals[n].verdict, "severity": signals[n].severity,
         "summary": _clip(signals[n].summary), "failed": signals[n].status == "failed",
         "branch": (signals[n].output or {}).get("branch")}
        for n in names if n in signals]}
    shown["boundaries"] = list(tx.run.context.get("boundaries", []))
    shown["inputs"] = dict(tx.run.inputs)
    return shown


def _clip(text: str | None, limit: int = 300) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters]"


def violation_reason(node: Node, check: BoundaryCheck) -> str:
    spec = node.spec
    values = ", ".join(f"{k}={v}" for k, v in check.values.items())
    return ((spec.message or f"boundary '{node.label}' violated: \u201c{spec.check}\u201d is false"
             + (f" ({values})" if values else "")) + (f"; {check.error}" if check.error else ""))


def open_boundary_gate(tx: Tx, node: Node, check: BoundaryCheck, reason: str, *,
                       recheck: Mapping[str, Any] | None = None, row_node: str | None = None,
                       visit: int | None = None, edited_by: Sequence[str] = ()) -> Gate:
    """Ask the people a violated boundary names (`on_violation: escalate` or `gate`)
    whether to allow it once (never those whose edits broke it: `edited_by`)."""
    spec = node.spec
    options = [Option("approve", "Allow this once", "approve", "primary", True),
               Option("reject", "Stop the run", "reject", "danger")]
    chain = tx.program.chains.get(spec.escalation) if spec.escalation else None
    policy: dict[str, Any] = {"check": spec.check, "values": check.values}
    if recheck is not None:
        policy["recheck"] = dict(recheck)
    if edited_by:
        policy["edited_by"] = sorted(edited_by)
    return open_gate(tx, node, kind="boundary", key=node.label,
                     title=f"Boundary '{node.label}' needs a decision", question=reason,
                     approver_specs=list(spec.approvers or []), options=options,
                     policy=policy, shown=shown_to_decider(tx, None), chain=chain,
                     row_node=row_node, visit=visit)


def open_gate(tx: Tx, node: Node, *, kind: str, key: str, title: str, question: str,
              approver_specs: Sequence[str], options: list[Option], quorum: int = 1,
              forbid_requester: bool = False, reject_ends: bool = True,
              editable: Sequence[str] = (), policy: Mapping[str, Any] | None = None,
              shown: Mapping[str, Any] | None = None, chain: esc.Chain | None = None,
              row_node: str | None = None, visit: int | None = None) -> Gate:
    """Open a gate at `node`. A gate a re-check opens (orchestrator.recheck) is stored under
    `row_node` and `visit` of its own: the run is not at `node`."""
    run = tx.run
    visit = int(run.visits.get(node.key, 1)) if visit is None else visit
    approvers = set(tx.org.resolve_many(approver_specs))
    row: dict[str, Any] = {
        "run_id": run.id, "node": row_node or node.key, "visit": visit, "key": key, "kind": kind,
        "status": "open", "title": title, "question": question,
        "approver_spec": list(approver_specs), "quorum": quorum,
        "forbid_requester": forbid_requester, "reject_ends": reject_ends,
        "options": [o.as_dict() for o in options], "editable": list(editable),
        "policy": dict(policy or {}), "shown": dict(shown or {}), "opened_at": tx.now}
    notify: list[str] = list(approver_specs)
    position = None
    if chain is not None:
        row["chain"] = chain.as_dict()
        position = esc.start(chain, tx.now)
        notify = list(position.notify)
        if position.can_decide:
            approvers |= tx.org.resolve_many(position.notify)
    # Under four-eyes the requester is no approver at all: not listed, not pinged, not
    # counted as pending, refused before a modal opens.
    barred = ({run.requester} if forbid_requester else set()) | editors_barred(policy or {})
    approvers -= barred
    fallback = None
    if not approvers and chain is None:
        # Nobody could ever decide: hand it to the admins rather than wait forever.
        approvers |= tx.org.admins - barred
        fallback = ("no eligible approver; the org's admins may decide" if approvers else
                    "nobody may decide it: an admin can reassign it, or the run can be stopped")
    row["approvers"] = sorted(approvers)
    gate = gates.insert_gate(tx.w, row)
    crash_point("gate.opened")
    data = {"gate": key, "gate_id": gate.id, "kind": kind, "title": title,
            "approvers": gate.approvers, "approver_spec": list(approver_specs),
            "quorum": quorum, "options": [o.id for o in options]}
    if forbid_requester:
        data["forbid_requester"] = True
    for detail in ("required_by", "recheck", "edited_by"):  # why it opened, who may not decide
        if policy and policy.get(detail):
            data[detail] = policy[detail]
    if fallback:
        data["note"] = fallback
    if chain is not None and position is not None:
        data["escalation"] = {"chain": chain.name, "level": 1, "notify": notify,
                              "deadline": position.deadline.isoformat()}
    if position is not None and chain is not None:
        enter_position(tx, gate, chain, position)
    tx.record("gate_opened", data, node=node.key,
              event="conflict_opened" if kind == "conflict" else "gate_opened")
    return gate


# -- timers ---------------------------------------------------------------------------------
def cancel_timers(tx: Tx, gate: Gate) -> None:
    """The gate's pending timers will do nothing: its token changes, and they are marked
    cancelled (a plain UPDATE, no ORM bookkeeping; a timer this transaction has itself
    changed, the one firing, keeps the status it was given when it is written).
    A gate without a token has no timers to mark: each timer of a gate carries the token
    this function gave it (`add_timer`)."""
    if gate.timer_token is not None:
        timers.cancel_gate_timers(tx.w, gate.id)
    gate.timer_token = secrets.token_hex(8)


def add_timer(tx: Tx, gate: Gate | None, kind: str, due: datetime, *, token: str | None = None,
              **payload: Any) -> Timer:
    """A wake-up for `gate` (carrying its current token), or for the run itself."""
    token = gate.timer_token if gate is not None else token
    assert token is not None
    timer = timers.insert_timer(tx.w, {
        "run_id": tx.run.id, "gate_id": gate.id if gate else None, "kind": kind,
        "due_at": due, "token": token, "payload": payload})
    engine = tx.engine
    tx.w.after_commit(lambda t=timer: engine.arm_timer(t.id, t.due_at))
    return timer


def enter_position(tx: Tx, gate: Gate, chain: esc.Chain, position: esc.Position) -> None:
    cancel_timers(tx, gate)
    gate.esc_level = position.level
    gate.esc_cycle = position.cycle
    gate.esc_state = "waiting"
    gate.claimed_by = None
    gate.claim_until = None
    gate.snoozed_until = None
    gate.next_deadline = position.deadline
    add_timer(tx, gate, "escalate", position.deadline)
    if position.remind_at is not None:
        add_timer(tx, gate, "remind", position.remind_at)


# -- decisions ------------------------------------------------------------------------------
def four_eyes_refusal(gate: Gate, ref: str, user: str | None = None) -> str:
    about = (gate.policy or {}).get("recheck") or {}
    if user is not None and about.get("by") == user:
        return (f"gate '{gate.key}' of {ref} is needed because of your edit at gate "
                f"'{about.get('gate')}', so you are not an approver of it: someone else "
                "decides it")
    if user is not None and user in editors_barred(gate.policy or {}):
        return (f"gate '{gate.key}' of {ref} is needed because of values you edited, so you "
                "are not an approver of it: someone else decides it")
    return (f"you started {ref}, and under this flow's four-eyes rule you are not an approver "
            f"of its gate '{gate.key}': someone else decides it. To withdraw your request, "
            "stop the run")
