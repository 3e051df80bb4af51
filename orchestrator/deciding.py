"""Decisions on gates: recording one person's decision, tallying the votes, escalating,
closing a gate and what its outcome does to the run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import SimpleNamespace
from typing import Any

from gates import escalation as esc
from gates.boundaries import check_boundary
from gates.options import Option, Refusal, check_reason, find_option
from gates.quorum import Vote, tally
from orchestrator import recheck
from orchestrator.failpoints import crash_point
from orchestrator.follow import effect_words, follow_choice, gate_passed, what_was_followed
from orchestrator.gating import (
    cancel_timers,
    eligible,
    enter_position,
    excluded,
    four_eyes_refusal,
    options_of,
)
from orchestrator.inputs import coerce
from orchestrator.program import Node
from orchestrator.runtime import Finish, Goto, Transition, Tx
from storage import actions, gates
from storage.records import Gate


@dataclass
class DecisionReport:
    status: str  # recorded | duplicate | refused | escalated
    message: str
    run: str
    gate: str | None = None
    gate_id: int | None = None
    outcome: str | None = None  # the effect that closed the gate, if it closed
    option: str | None = None
    notes: list[str] = field(default_factory=list)  # more the person should be told

    @property
    def ok(self) -> bool:
        return self.status != "refused"


def escalate(tx: Tx, gate: Gate, why: str, *, actor: str = "baton") -> Transition | None:
    """Move `gate` to the next level of its chain (its current level ran out of time, a
    claim expired, or someone asked). Returns the run's transition when the chain is
    exhausted and the gate fails closed."""
    chain = esc.Chain.from_dict(gate.chain)
    step = esc.advance(chain, gate.esc_level, gate.esc_cycle, tx.now)
    if isinstance(step, esc.Exhausted):
        cancel_timers(tx, gate)
        gate.next_deadline = None
        if step.final == "hold":
            gate.esc_state = "held"
            tx.record("escalation_exhausted", {"gate": gate.key, "gate_id": gate.id,
                                               "final": "hold", "why": step.explanation},
                      node=gate.node, event="escalated")
            return None
        tx.record("escalation_exhausted", {"gate": gate.key, "gate_id": gate.id,
                                          "final": "reject", "why": step.explanation},
                 node=gate.node)
        reject = next((o for o in options_of(gate) if o.effect == "reject"), None)
        return close_gate(tx, gate, "reject", reject.id if reject else "reject",
                          step.explanation, deciders=[], actor="baton")
    added: list[str] = []
    if step.can_decide:
        new = tx.org.resolve_many(step.notify) - set(gate.approvers) - excluded(gate, tx.run.requester)
        added = sorted(new)
        gate.approvers = sorted(set(gate.approvers) | new)
    enter_position(tx, gate, chain, step)
    data = {"gate": gate.key, "gate_id": gate.id, "chain": chain.name,
            "level": step.level + 1, "cycle": step.cycle + 1, "notify": list(step.notify),
            "added_approvers": added, "deadline": step.deadline.isoformat(), "why": why}
    tx.record("escalated", data, actor=actor, node=gate.node, event="escalated")
    return None


def _refuse(tx: Tx, gate: Gate | None, user: str, option: str, why: str) -> DecisionReport:
    tx.record("decision_refused", {"gate": gate.key if gate else None,
                                  "gate_id": gate.id if gate else None,
                                  "option": option, "why": why},
             actor=user, node=gate.node if gate else None)
    return DecisionReport("refused", why, tx.run.ref, gate.key if gate else None,
                          gate.id if gate else None)


def record_decision(tx: Tx, gate: Gate, user: str, option_id: str, reason: str | None,
                    edits: Mapping[str, Any] | None) -> tuple[DecisionReport, Transition | None]:
    run = tx.run
    try:
        option = find_option(options_of(gate), option_id)
    except Refusal as exc:
        return _refuse(tx, gate, user, option_id, str(exc)), None
    if user in excluded(gate, run.requester):
        return _refuse(tx, gate, user, option.id, four_eyes_refusal(gate, run.ref, user)), None
    if user not in gate.approvers:
        names = ", ".join(tx.org.display(p) for p in sorted(eligible(gate, run.requester)))
        return _refuse(tx, gate, user, option.id,
                       f"you are not an approver of {run.ref} gate '{gate.key}' "
                       f"(approvers: {names or 'nobody yet'})"), None
    try:
        reason = check_reason(option, reason)
    except Refusal as exc:
        return _refuse(tx, gate, user, option.id, str(exc)), None
    changes: dict[str, Any] = {}
    if edits:
        try:
            changes = _check_edits(tx, gate, option, edits)
        except Refusal as exc:
            return _refuse(tx, gate, user, option.id, str(exc)), None
    if option.effect == "escalate":
        if not gate.chain:
            return _refuse(tx, gate, user, option.id, "this gate has no escalation chain"), None
        tx.record("escalation_requested", {"gate": gate.key, "gate_id": gate.id,
                                          "reason": reason}, actor=user, node=gate.node)
        transition = escalate(tx, gate, f"{tx.org.display(user)} asked to escalate"
                              + (f": {reason}" if reason else ""), actor=user)
        return DecisionReport("escalated", f"{run.ref} escalated to the next level",
                              run.ref, gate.key, gate.id), transition

    decisions: list[Any] = gates.decisions_of_gate(tx.w, gate.id)
    existing = next((d for d in decisions if d.decider == user), None)
    if existing is not None and existing.counted:
        return DecisionReport(
            "duplicate",
            f"you already chose {existing.option} on {run.ref} at "
            f"{existing.created_at:%Y-%m-%d %H:%M} UTC; one decision per person counts",
            run.ref, gate.key, gate.id), None
    if option.effect == "approve":
        # The values this approval would put in effect pass the flow's policy again: an
        # edit (this one, or one proposed earlier that this approval would settle) that
        # breaks a `stop` boundary is refused here, and nothing changes.
        effective = {**run.inputs, **gate.proposal, **{k: v["to"] for k, v in changes.items()}}
        if effective != run.inputs:
            at = recheck.resumes_at(tx, gate.policy) or tx.node(gate.node)
            changed = sorted(k for k in effective if effective[k] != run.requested_inputs.get(k))
            outcome = recheck.recheck(tx, at, effective, by=user, edited=changed)
            if outcome.refusal is not None:
                return _refuse(tx, gate, user, option.id,
                               recheck.refusal_message(outcome.refusal, run.ref)), None

    if changes:
        _dismiss_stale_approvals(tx, gate, user, changes)
    # One row per person; a dismissed approval is replaced when that person decides again.
    edited = {k: v["to"] for k, v in changes.items()}
    if existing is None:  # the usual case: a plain INSERT, at once, so that a second
        # decision by the same person (a double click in another process) fails here
        values = gates.insert_decision(tx.w, {
            "gate_id": gate.id, "run_id": run.id, "decider": user, "option": option.id,
            "effect": option.effect, "reason": reason, "edits": edited, "counted": True,
            "created_at": tx.now})
        decisions.append(SimpleNamespace(**values))  # the newest row: its id is the highest
    else:
        # what they proposed before stays theirs: it is still in the proposal (`_editors`)
        existing.option, existing.effect, existing.reason = option.id, option.effect, reason
        existing.edits = {**(existing.edits or {}), **edited}
        existing.counted, existing.created_at = True, tx.now
        tx.w.flush()
    crash_point("decision.recorded")
    data: dict[str, Any] = {"gate": gate.key, "gate_id": gate.id, "option": option.id,
                            "effect": option.effect, "reason": reason}
    if changes:
        data["edits"] = changes
    seq = tx.record("decision", data, actor=user, node=gate.node)

    votes = [Vote(d.decider, d.option, d.effect) for d in decisions if d.counted]
    result = tally(votes, quorum=gate.quorum, reject_ends=gate.reject_ends,
                   eligible=eligible(gate, run.requester), name=tx.org.display)
    if result.outcome is None:
        gate.version += 1
        tx.announce("vote_recorded", seq, {"approvals": len(result.approvals),
                                           "quorum": gate.quorum})
        return DecisionReport("recorded", f"{option.label} recorded on {run.ref}: "
                              f"{result.explanation}", run.ref, gate.key, gate.id), None
    deciders = list(result.rejections if result.outcome == "reject" else result.approvals)
    if result.outcome in ("request_changes", "retry"):
        deciders = [user]
    explanation = result.explanation
    if gate.kind != "approval" and result.outcome == "approve":
        # only an approval gate approves: elsewhere the option says what was chosen
        chosen = find_option(options_of(gate), result.option or option.id)
        explanation = (f"chosen by {', '.join(tx.org.display(p) for p in deciders)}: "
                       f"{chosen.label}")
    transition = close_gate(tx, gate, result.outcome, result.option or option.id,
                            explanation, deciders=deciders, actor=user)
    message = f"{run.ref} {_past(result.outcome)}: {result.explanation}" + "".join(
        f"; {note}" for note in tx.notes)
    if gate.kind == "conflict" and result.outcome == "approve":  # nothing was approved
        record = tx.run.context.get("conflicts", {}).get(gate.key, {})
        message = (f"{run.ref} follows {what_was_followed(record)}, chosen by "
                   f"{tx.org.display(user)}: {effect_words(record)}")
    return DecisionReport("recorded", message, run.ref, gate.key, gate.id,
                          outcome=result.outcome, option=result.option,
                          notes=list(tx.notes)), transition


def _past(effect: str) -> str:
    return {"approve": "approved", "reject": "rejected",
            "request_changes": "sent back for changes", "retry": "will retry"}.get(effect, effect)


def _check_edits(tx: Tx, gate: Gate, option: Option, edits: Mapping[str, Any]) -> dict[str, Any]:
    if option.effect != "approve":
        raise Refusal("edits can only come with an approval (edit-and-approve)")
    if not gate.editable:
        raise Refusal(f"gate '{gate.key}' does not allow editing inputs")
    current = {**tx.run.inputs, **gate.proposal}
    changes: dict[str, Any] = {}
    for name, raw in edits.items():
        if name not in gate.editable:
            raise Refusal(f"{name!r} cannot be edited here; editable: " + ", ".join(gate.editable))
        spec = tx.program.flow.inputs[name]
        try:
            value = coerce(spec, raw, name)
        except ValueError as exc:
            raise Refusal(str(exc)) from None
        if value != current.get(name):
            changes[name] = {"from": current.get(name), "to": value}
    return changes


def _dismiss_stale_approvals(tx: Tx, gate: Gate, user: str, changes: Mapping[str, Any]) -> None:
    """Approvals given to other values no longer count (like a stale review)."""
    stale = gates.counted_approvals_of_others(tx.w, gate.id, user)
    for decision in stale:
        decision.counted = False
    gate.proposal = {**gate.proposal, **{k: v["to"] for k, v in changes.items()}}
    if stale:
        tx.record("approvals_dismissed", {"gate": gate.key, "gate_id": gate.id,
                                         "dismissed": [d.decider for d in stale],
                                         "why": "the proposed inputs changed"},
                 actor=user, node=gate.node)


def close_gate(tx: Tx, gate: Gate, effect: str, option: str, explanation: str, *,
               deciders: list[str], actor: str) -> Transition:
    """Settle a gate and say where its run goes next."""
    cancel_timers(tx, gate)
    gate.status = "decided"
    tx.gate_decided()
    gate.outcome = option
    gate.effect = effect
    gate.closed_by = "person" if deciders else "baton"
    gate.decided_at = tx.now
    gate.esc_state = "done"
    gate.next_deadline = None
    gate.version += 1
    data: dict[str, Any] = {"gate": gate.key, "gate_id": gate.id, "outcome": effect,
                            "option": option, "decided_by": deciders, "why": explanation,
                            "waited_s": round((tx.now - gate.opened_at).total_seconds(), 3)}
    about = gate.policy.get("recheck")  # a gate a re-check opened is stored apart
    node = tx.node(about["target"] if about else gate.node)
    # A re-check after edits may open another gate: it comes after this one's decision.
    transition: Transition | Callable[[], Transition]
    if gate.kind == "approval":
        transition = _approval_outcome(tx, gate, node, effect, data)
    elif gate.kind == "conflict":
        transition = (Finish("rejected", "rejected", f"conflict '{gate.key}': {data['why']}")
                      if effect != "approve" else follow_choice(tx, gate, node, option, data))
    elif gate.kind == "boundary":
        if effect == "approve":
            _allowed_once(tx, gate, node, deciders)
            after = recheck.resumes_at(tx, gate.policy)
            transition = (partial(recheck.continue_after, tx, after, by=about["by"],
                                  editors=about.get("editors", ()))
                          if after is not None and about is not None else Goto(node.next))
        else:
            transition = Finish("stopped", "boundary", f"boundary '{gate.key}': {explanation}")
    elif gate.kind == "action":
        transition = _action_outcome(tx, gate, node, effect, explanation)
    elif gate.kind == "agent":
        transition = (Goto(node.key) if effect == "retry" else Goto(node.next)
                      if effect == "approve" else
                      Finish("failed", "agent_failed", f"gate '{gate.key}': {explanation}"))
    elif gate.kind == "limit":
        transition = (Goto(node.key) if effect == "approve" else
                      Finish("stopped", "loop_guard", f"gate '{gate.key}': {explanation}"))
        if effect == "approve":
            tx.run.context = {**tx.run.context,
                              "limit_overrides": tx.run.context.get("limit_overrides", 0) + 1}
    else:
        raise ValueError(f"unknown gate kind {gate.kind}")
    tx.record("gate_decided", data, actor=actor, node=gate.node, event="gate_decided",
              extra={"kind": gate.kind})
    return transition() if callable(transition) else transition


def _editors(tx: Tx, gate: Gate) -> tuple[str | None, set[str]]:
    """Who proposed the values in effect at `gate` (the last approver who edited, whose
    approval counts), and everyone who proposed values there."""
    edited = [d for d in gates.decisions_of_gate(tx.w, gate.id) if d.edits]
    counted = [d.decider for d in edited if d.counted]
    return (counted[-1] if counted else None), {d.decider for d in edited}


def _allowed_once(tx: Tx, gate: Gate, node: Node, deciders: list[str]) -> None:
    """Remember that people allowed boundary `node` for these values: a re-check of the same
    values does not ask them again; different values (a later edit) do."""
    values = check_boundary(node.label, node.conditions["check"], tx.conditions()).values
    tx.run.context = {**tx.run.context, "overrides": [
        *tx.run.context.get("overrides", []),
        {"boundary": node.key, "gate": gate.key, "gate_id": gate.id, "by": deciders,
         "inputs": dict(tx.run.inputs), "values": values}]}


def _approval_outcome(tx: Tx, gate: Gate, node: Node, effect: str,
                      data: dict[str, Any]) -> Transition | Callable[[], Transition]:
    run = tx.run
    if effect == "approve":
        gate_passed(tx, node)
        about = gate.policy.get("recheck")
        by = about["by"] if about else None
        editors = set(about.get("editors", ())) if about else set()  # whose values these are
        if gate.proposal:
            approved = {}
            for name, value in gate.proposal.items():
                approved[name] = {"requested": run.inputs.get(name), "approved": value}
            run.inputs = {**run.inputs, **gate.proposal}
            data["approved_inputs"] = approved
            editor, here = _editors(tx, gate)
            by, editors = editor or by, editors | here
            # whoever changed the values does not decide what the change alone makes
            # necessary further on, either (recheck.editors_behind)
            run.context = {**run.context, "edited_by": sorted(
                {*run.context.get("edited_by", []), *here})}
        recheck.remember_approval(tx, node)
        if by is not None:
            # new values, or a gate the last re-check asked for: policy again before going on
            after = recheck.resumes_at(tx, gate.policy) or node
            return partial(recheck.continue_after, tx, after, by=by, editors=editors)
        return Goto(node.next)
    if effect == "request_changes":
        decision = gates.last_change_request(tx.w, gate.id)
        comment = {"gate": gate.key, "by": decision.decider if decision else None,
                   "text": (decision.reason if decision else "") or "", "at": tx.now.isoformat()}
        run.context = {**run.context, "comments": [*run.context.get("comments", []), comment]}
        data["back_to"] = node.back_to
        return Goto(node.back_to)
    return Finish("rejected", "rejected", f"gate '{gate.key}': {data['why']}")


def _action_outcome(tx: Tx, gate: Gate, node: Node, effect: str, explanation: str) -> Transition:
    action = actions.get_action(tx.w, gate.policy.get("action_id"))
    if effect == "approve":
        if action is not None:
            action.status = "done"
            action.result = {**action.result, "confirmed_by_person": True}
            action.finished_at = tx.now
        return Goto(node.next)
    if effect == "retry":
        if action is not None:
            action.status = "retry"
        return Goto(node.key)
    return Finish("failed", "action_unknown", f"action '{gate.key}': {explanation}")
