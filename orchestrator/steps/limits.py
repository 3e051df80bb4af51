"""Loop guards checked before every step: max steps, visits, duration, token budget."""

from __future__ import annotations

import structlog

from gates.options import Option
from orchestrator import gating
from orchestrator.program import Node
from orchestrator.runtime import Finish, Transition, Tx, Wait

log = structlog.get_logger("baton.steps")


def check_limits(tx: Tx, node: Node) -> Transition | None:
    """The loop guard, before a step: max steps, visits per step, run duration."""
    limits = tx.program.flow.limits
    scale = 1 + int(tx.run.context.get("limit_overrides", 0))
    run = tx.run
    visits = int(run.visits.get(node.key, 0))
    if run.steps_taken >= limits.max_steps * scale:
        return limit_violation(tx, node, "max_steps", limits.max_steps * scale, run.steps_taken)
    if visits >= limits.max_visits * scale:
        return limit_violation(tx, node, "max_visits", limits.max_visits * scale, visits)
    elapsed = (tx.now - run.created_at).total_seconds()
    if elapsed > limits.max_duration.total_seconds() * scale:
        return limit_violation(tx, node, "max_duration",
                               limits.max_duration.total_seconds() * scale, round(elapsed, 3))
    return None


def check_token_budget(tx: Tx, node: Node) -> Transition | None:
    budget = tx.program.flow.limits.token_budget
    if budget is None:
        return None
    scale = 1 + int(tx.run.context.get("limit_overrides", 0))
    if tx.run.tokens_used > budget * scale:
        return limit_violation(tx, node, "token_budget", budget * scale, tx.run.tokens_used,
                               resume_at=node.next)
    return None


def limit_violation(tx: Tx, node: Node, guard: str, limit: float, value: float,
                    resume_at: str | None = None) -> Transition:
    limits = tx.program.flow.limits
    labels = {"max_steps": "steps", "max_visits": f"visits to step {node.label}",
              "max_duration": "seconds of run time", "token_budget": "tokens"}
    reason = f"loop guard: {value:g} {labels[guard]} reached the limit of {limit:g} ({guard})"
    data = {"boundary": f"limits.{guard}", "passed": False, "limit": limit, "value": value,
            "message": reason, "on_violation": limits.on_violation}
    tx.record("boundary", data, node=node.key, event="boundary_violated")
    if limits.on_violation == "escalate" and limits.escalation:
        chain = tx.program.chains[limits.escalation]
        options = [Option("approve", "Let it continue", "approve", "primary"),
                   Option("reject", "Stop the run", "reject", "danger")]
        gating.open_gate(tx, node, kind="limit", key=f"limits-{guard}",
                         title="A run hit its loop guard", question=reason, approver_specs=[],
                         options=options, chain=chain, policy={"guard": guard, "limit": limit})
        return Wait()
    return Finish("stopped", "loop_guard", reason)
