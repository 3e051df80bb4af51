"""The `boundary` step: a deterministic limit, checked before the steps after it."""

from __future__ import annotations

import structlog

from gates.boundaries import check_boundary
from orchestrator import gating, recheck
from orchestrator.program import Node
from orchestrator.runtime import Finish, Goto, Transition, Tx, Wait

log = structlog.get_logger("baton.steps")


def step_boundary(tx: Tx, node: Node) -> Transition:
    spec = node.spec
    check = check_boundary(node.label, node.conditions["check"], tx.conditions(), spec.message)
    data = check.as_dict()
    data["on_violation"] = spec.on_violation
    seq = tx.record("boundary", data, node=node.key)
    tx.run.context = {**tx.run.context, "boundaries": [
        *tx.run.context.get("boundaries", []),
        {"boundary": node.label, "check": spec.check, "passed": check.passed, "node": node.key}]}
    if check.passed:
        return Goto(node.next)
    reason = gating.violation_reason(node, check)
    tx.announce("boundary_violated", seq,
                {} if data.get("message") == reason else {"message": reason})
    if spec.on_violation == "stop":
        return Finish("stopped", "boundary", reason)
    gating.open_boundary_gate(tx, node, check, reason, edited_by=recheck.editors_behind(
        tx, node.conditions["check"], boundary=True))
    return Wait()
