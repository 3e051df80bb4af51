"""The `route` step (supervisor): a router agent picks the next branch, and why is traced."""

from __future__ import annotations

import structlog

from orchestrator.agents import AgentResult
from orchestrator.program import Node
from orchestrator.runtime import Goto, Transition, Tx, Work
from orchestrator.steps.agents import _clip, agent_context, agent_failure, run_agents, store_result
from orchestrator.steps.limits import check_token_budget, limit_violation

log = structlog.get_logger("baton.steps")


def step_route(tx: Tx, node: Node) -> Transition | Work:
    spec = node.spec
    routes = dict(tx.run.context.get("routes", {}))
    rounds = int(routes.get(node.key, {}).get("rounds", 0))
    if spec.repeat and rounds >= spec.max_rounds:
        return limit_violation(tx, node, "max_visits", spec.max_rounds, rounds)
    jobs = [(spec.agent, agent_context(tx, spec.agent))]
    work = run_agents(tx.engine, tx.program, tx.now, jobs, 1)

    def finish(tx2: Tx, results: list[AgentResult]) -> Transition:
        return finish_route(tx2, node, results[0], rounds + 1)

    return Work(work, finish)


def finish_route(tx: Tx, node: Node, result: AgentResult, rounds: int) -> Transition:
    spec = node.spec
    allowed = sorted(node.branches) + (["done"] if spec.repeat else [])
    if result.status == "ok" and result.output is not None:
        branch = result.output.branch
        if branch not in allowed:
            result.status = "failed"
            result.error = (f"router chose unknown branch {branch!r}; branches: "
                            + ", ".join(allowed))
            tx.record("route_refused", {"route": node.label, "router": spec.agent,
                                       "branch": branch, "allowed": allowed,
                                       "why": result.output.why}, node=node.key)
    store_result(tx, node, result)
    if result.status == "failed":
        return agent_failure(tx, node, result) or Goto(node.next)
    assert result.output is not None
    branch = result.output.branch
    routes = dict(tx.run.context.get("routes", {}))
    history = list(routes.get(node.key, {}).get("picks", []))
    history.append(branch)
    routes[node.key] = {"rounds": rounds, "picks": history}
    tx.run.context = {**tx.run.context, "routes": routes}
    tx.record("route", {"route": node.label, "router": spec.agent, "branch": branch,
                       "why": _clip(result.output.why or result.output.rationale, 1000),
                       "round": rounds}, node=node.key)
    over = check_token_budget(tx, node)
    if over is not None:
        return over
    if branch == "done":
        return Goto(node.next)
    return Goto(node.branches[branch])
