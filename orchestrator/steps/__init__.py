"""One handler per step kind, each in a module of its own.

`begin(tx, node)` runs inside the run's write transaction and either settles the step
there (gate, boundary, conflict) or returns `Work`: the slow part (agents, an action),
which the engine runs outside any transaction and hands back to `finish` in a new one.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator import external
from orchestrator.program import Node
from orchestrator.runtime import Transition, Tx, Work
from orchestrator.steps.action import (
    ActionContext,
    ActionOutcome,
    finish_action,
    run_action,
    step_action,
    unknown_action,
)
from orchestrator.steps.agents import (
    agent_context,
    agent_failure,
    jsonable,
    run_agents,
    step_agent,
    step_parallel,
    store_result,
)
from orchestrator.steps.boundary import step_boundary
from orchestrator.steps.conflict import choice_effects, step_conflict
from orchestrator.steps.gate import step_gate
from orchestrator.steps.limits import check_limits, check_token_budget, limit_violation
from orchestrator.steps.plan import step_plan
from orchestrator.steps.route import step_route

__all__ = ["ActionContext", "ActionOutcome", "agent_context", "agent_failure", "begin",
           "check_limits", "check_token_budget", "choice_effects", "finish_action", "jsonable",
           "limit_violation", "run_action", "run_agents", "store_result", "unknown_action"]

HANDLERS: dict[str, Callable[[Tx, Node], Transition | Work]] = {
    "parallel": step_parallel,
    "agent": step_agent,
    "gate": step_gate,
    "conflict": step_conflict,
    "boundary": step_boundary,
    "action": step_action,
    "external": external.step_external,
    "route": step_route,
    "plan": step_plan,
}


def begin(tx: Tx, node: Node) -> Transition | Work:
    return HANDLERS[node.kind](tx, node)
