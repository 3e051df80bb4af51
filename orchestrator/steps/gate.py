"""The `gate` step: a human decision, when its condition holds."""

from __future__ import annotations

from typing import Any

import structlog

from gates.boundaries import lookup
from gates.conditions import ConditionError
from gates.recheck import reads_inputs
from orchestrator import gating, recheck
from orchestrator.gating import shown_to_decider
from orchestrator.program import Node
from orchestrator.runtime import Goto, Transition, Tx, Wait

log = structlog.get_logger("baton.steps")


def step_gate(tx: Tx, node: Node) -> Transition:
    spec = node.spec
    cel = tx.conditions()
    condition = node.conditions["when"]
    values = {path: lookup(cel, path) for path in condition.references()}
    error = None
    try:
        needed = condition.is_true(cel)
    except ConditionError as exc:
        needed, error = True, f"{exc}; asking a person instead (gates fail closed)"
    # A conflict before it followed a signal whose effect is this gate: it opens whatever
    # its `when` says, until it approves (a request for changes that sends the run back
    # does not lift it); later visits ask `when` again (deciding.close_gate).
    required = tx.run.context.get("required_gates", {}).get(node.key)
    if required is not None:
        needed = True
    skipped = [k for k in tx.run.context.get("skipped_gates", []) if k != node.key]
    if not needed:
        if reads_inputs(condition):  # an approver's edit that makes `when` hold must pass it
            tx.run.context = {**tx.run.context, "skipped_gates": [*skipped, node.key]}
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        tx.record("gate_skipped", {"gate": node.label, "when": spec.when, "values": values,
                                  "why": f"no approval needed: \u201c{spec.when}\u201d is false"
                                         + (f" ({shown})" if shown else "")}, node=node.key)
        return Goto(node.next)
    flow = tx.program.flow
    title = spec.title or f"Approve {flow.title or flow.name}?"
    if "skipped_gates" in tx.run.context:
        tx.run.context = {**tx.run.context, "skipped_gates": skipped}
    policy: dict[str, Any] = {"when": spec.when, "values": values}
    if error:
        policy["error"] = error
    shown = shown_to_decider(tx, spec.show)
    if required is not None:
        policy["required_by"] = shown["required_by"] = required
    else:
        edited_by = recheck.editors_behind(tx, condition, boundary=False)
        if edited_by:
            policy["edited_by"] = edited_by
    gating.open_gate(
        tx, node, kind="approval", key=node.label, title=title, question=spec.ask or "",
        approver_specs=spec.approvers,
        options=gating.gate_options(spec.options, spec.reason_required),
        quorum=spec.quorum, forbid_requester=spec.forbid_requester,
        reject_ends=spec.reject_ends, editable=spec.editable, policy=policy, shown=shown,
        chain=tx.program.chains.get(spec.escalation) if spec.escalation else None)
    return Wait()
