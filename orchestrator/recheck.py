"""Edits pass policy again (gates/recheck.py) before anything after the gate runs.

Twice for an edit: when an approver proposes it (an edit that breaks a `stop` boundary is
refused there, with the boundary named, and changes nothing), and when the gate closes and
the values take effect (`continue_after`): a boundary the run has passed that now needs
people opens its gate, a gate the run skipped that now applies opens, one at a time, and
the run goes on past the edited gate only once all of them have passed (a gate approved for
other values is asked again like a skipped one). Each re-check is traced: one `boundary`
entry per boundary, marked `recheck`.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gates import recheck as policy
from gates.boundaries import check_boundary
from gates.conditions import Condition
from orchestrator import gating
from orchestrator.program import Node
from orchestrator.runtime import Finish, Goto, Transition, Tx, Wait

RECHECK_NODE = "{}:recheck"  # where the gates a re-check opens are stored (their own rows)


@dataclass
class Outcome:
    boundaries: list[policy.BoundaryResult] = field(default_factory=list)
    required_gate: Node | None = None
    gate_values: dict[str, Any] = field(default_factory=dict)
    seqs: list[int] = field(default_factory=list)  # where each of `boundaries` was traced

    @property
    def refusal(self) -> policy.BoundaryResult | None:
        return next((r for r in self.boundaries if r.stops), None)

    @property
    def asks(self) -> policy.BoundaryResult | None:
        return next((r for r in self.boundaries if r.asks_now), None)


def _reachable(tx: Tx, start: Node) -> list[str]:
    """Steps the run may still reach from `start`: next steps, branches, paths, and where
    a later gate may send it back to."""
    seen: set[str] = set()
    queue = deque(k for k in (start.next, *start.branches.values()) if k)
    while queue:
        key = queue.popleft()
        if key in seen:
            continue
        seen.add(key)
        node = tx.node(key)
        queue.extend(k for k in (node.next, node.back_to, *node.branches.values()) if k)
    return [key for key in tx.program.nodes if key in seen]


def _boundary_rules(tx: Tx, at: Node) -> list[policy.BoundaryRule]:
    """The boundaries reading inputs that the run has passed or may still reach."""
    checked = tx.run.context.get("boundaries", [])
    passed = {b["node"] for b in checked if "node" in b}
    labels = {b["boundary"] for b in checked if "node" not in b}  # runs from before "node"
    ahead = set(_reachable(tx, at))
    rules = []
    for key, node in tx.program.nodes.items():
        if node.kind != "boundary" or not policy.reads_inputs(node.conditions["check"]):
            continue
        behind = key in passed or node.label in labels
        if behind or key in ahead:
            rules.append(policy.BoundaryRule(key, node.label, node.conditions["check"],
                                             node.spec.on_violation, node.spec.message,
                                             passed_before=behind))
    return rules


def _gates_to_ask(tx: Tx, at: Node) -> list[policy.GateRule]:
    """Gates whose `when` reads inputs, that the run skipped or that people approved (for
    the values then in effect: `remember_approval`), other than the edited gate `at`."""
    skipped = tx.run.context.get("skipped_gates", [])
    approved = tx.run.context.get("approved_gates", {})
    return [policy.GateRule(key, node.label, node.conditions["when"],
                            None if key in skipped else approved[key])
            for key, node in tx.program.nodes.items()
            if key != at.key and (key in skipped or key in approved)
            and policy.reads_inputs(node.conditions["when"])]


def remember_approval(tx: Tx, node: Node) -> None:
    """Gate `node` approved the values now in effect: an edit to the inputs its `when` reads
    asks it again (`recheck`)."""
    if node.kind == "gate" and policy.reads_inputs(node.conditions["when"]):
        tx.run.context = {**tx.run.context, "approved_gates": {
            **tx.run.context.get("approved_gates", {}), node.key: dict(tx.run.inputs)}}


def _overrides(tx: Tx) -> list[policy.Override]:
    return [policy.Override(o["boundary"], o.get("inputs", {}), o.get("values", {}))
            for o in tx.run.context.get("overrides", [])]


def recheck(tx: Tx, at: Node, values: Mapping[str, Any], *, by: str,
            edited: list[str]) -> Outcome:
    """Check the flow's policy against `values`, the inputs an approval at `at` would put
    in effect, and trace it (once per transaction and values)."""
    memo = json.dumps([at.key, values], sort_keys=True, default=str)
    if memo in tx.rechecked:
        return tx.rechecked[memo]
    context = {**tx.conditions(), "inputs": dict(values)}
    outcome = Outcome(policy.recheck_boundaries(_boundary_rules(tx, at), context,
                                                _overrides(tx)))
    about = {"gate": at.label, "by": by, "edited": edited}
    for result in outcome.boundaries:
        outcome.seqs.append(tx.record("boundary", {**result.as_trace(), "recheck": about},
                                      node=result.rule.key))
    if outcome.refusal is None and outcome.asks is None:
        for rule in _gates_to_ask(tx, at):
            if policy.approval_stands(rule, values):
                continue
            needed, read = policy.gate_now_required(rule, context)
            if needed:
                outcome.required_gate, outcome.gate_values = tx.node(rule.key), read
                break
    tx.rechecked[memo] = outcome
    return outcome


def refusal_message(result: policy.BoundaryResult, ref: str) -> str:
    values = ", ".join(f"{k}={v}" for k, v in result.check.values.items())
    why = result.rule.message or f"`{result.check.check}` is false"
    return (f"with these edits {ref} would break boundary '{result.rule.label}': {why}"
            + (f" ({values})" if values else "") + "; nothing was changed")


def continue_after(tx: Tx, at: Node, *, by: str, editors: Iterable[str] = ()) -> Transition:
    """The values an approval at `at` put in effect have been re-checked: go on past `at`,
    or first through what they now require (one gate at a time: when it passes, this runs
    again). `by` made the last edit; none of `editors`, who proposed values at `at` (or
    before, for the gates the last re-check opened), decides what they require."""
    run = tx.run
    edited = sorted(k for k in run.inputs if run.inputs.get(k) != run.requested_inputs.get(k))
    outcome = recheck(tx, at, run.inputs, by=by, edited=edited)
    count = int(run.context.get("recheck_gates", 0)) + 1
    about = {"after": at.key, "gate": at.label, "by": by, "edited": edited,
             "editors": sorted({by, *editors})}
    if outcome.refusal is not None:  # the values changed since the edit was accepted
        return Finish("stopped", "boundary", refusal_message(outcome.refusal, run.ref))
    asks = outcome.asks
    if asks is not None:
        node = tx.node(asks.rule.key)
        run.context = {**run.context, "recheck_gates": count}
        reason = (f"{gating.violation_reason(node, asks.check)} (after edits at gate "
                  f"'{at.label}')")
        tx.announce("boundary_violated", next(
            seq for seq, result in zip(outcome.seqs, outcome.boundaries, strict=True)
            if result is asks),
                    {"message": reason})
        gating.open_boundary_gate(tx, node, asks.check, reason,
                                  recheck={**about, "target": node.key},
                                  row_node=RECHECK_NODE.format(at.key), visit=count)
        tx.notes.append(f"the edited values break boundary '{node.label}': "
                        f"it needs a decision before the run goes on")
        return Wait()
    gate = outcome.required_gate
    if gate is not None:
        run.context = {**run.context, "recheck_gates": count,
                       "skipped_gates": [k for k in run.context.get("skipped_gates", [])
                                         if k != gate.key]}
        spec = gate.spec
        flow = tx.program.flow
        shown = gating.shown_to_decider(tx, spec.show)
        gating.open_gate(
            tx, gate, kind="approval", key=gate.label,
            title=spec.title or f"Approve {flow.title or flow.name}?",
            question=spec.ask or "", approver_specs=spec.approvers,
            options=gating.gate_options(spec.options, spec.reason_required),
            quorum=spec.quorum, forbid_requester=spec.forbid_requester,
            reject_ends=spec.reject_ends, editable=spec.editable,
            policy={"when": spec.when, "values": outcome.gate_values,
                    "recheck": {**about, "target": gate.key}},
            shown=shown, chain=tx.program.chains.get(spec.escalation) if spec.escalation else None,
            row_node=RECHECK_NODE.format(at.key), visit=count)
        again = gate.key in run.context.get("approved_gates", {})
        tx.notes.append(f"with the edited values gate '{gate.label}' "
                        + ("approved other values" if again else "applies")
                        + f" (`{spec.when}`): it must approve before the run goes on")
        return Wait()
    return Goto(at.next)


def editors_behind(tx: Tx, condition: Condition, *, boundary: bool) -> list[str]:
    """The approvers who changed the run's values (edit-and-approve) when the gate or
    boundary the run reaches now asks people only because of it: with the values the
    requester gave, its `when` would not hold, or its check would pass. They do not decide
    it, as for the gates a re-check opens; someone else looks at their values."""
    editors = tx.run.context.get("edited_by", [])
    if not editors or not policy.reads_inputs(condition):
        return []
    requested = {**tx.conditions(), "inputs": dict(tx.run.requested_inputs)}
    if boundary:
        asked = not check_boundary("", condition, requested).passed
    else:
        asked = policy.gate_now_required(policy.GateRule("", "", condition), requested)[0]
    return [] if asked else list(editors)


def resumes_at(tx: Tx, gate_policy: Mapping[str, Any]) -> Node | None:
    """The edited gate a re-check gate was opened after, if it was opened by one."""
    about = gate_policy.get("recheck")
    return tx.node(about["after"]) if about else None
