"""The `plan` step (planner-executor): a planner's subtasks, each run by the executor."""

from __future__ import annotations

import structlog

from gates.conflicts import (
    SignalView,
    severity_order,
)
from orchestrator.agents import AgentContext, AgentOutput, AgentResult
from orchestrator.program import Node
from orchestrator.runtime import Goto, Transition, Tx, Work
from orchestrator.steps.agents import agent_context, agent_failure, run_agents, store_result
from orchestrator.steps.limits import check_token_budget

log = structlog.get_logger("baton.steps")


def step_plan(tx: Tx, node: Node) -> Transition | Work:
    spec = node.spec
    planner_ctx = agent_context(tx, spec.planner)
    engine, program, now = tx.engine, tx.program, tx.now
    plan_work = run_agents(engine, program, tx.now, [(spec.planner, planner_ctx)], 1)
    base = agent_context(tx, spec.executor)

    def work() -> tuple[AgentResult, list[AgentResult], str | None]:
        planned = plan_work()[0]
        if planned.status != "ok" or planned.output is None:
            return planned, [], None
        subtasks = planned.output.subtasks
        if not subtasks:
            return planned, [], "the planner returned no subtasks"
        if len(subtasks) > spec.max_subtasks:
            return planned, [], (f"the planner returned {len(subtasks)} subtasks; the limit is "
                                 f"{spec.max_subtasks} (max_subtasks)")
        jobs = []
        for index, subtask in enumerate(subtasks):
            if not isinstance(subtask, dict) or not str(subtask.get("title", "")).strip():
                return planned, [], f"subtask {index + 1} has no title"
            ctx = AgentContext(**{**base.__dict__, "subtask": {"index": index + 1, **subtask}})
            jobs.append((spec.executor, ctx))
        return planned, run_agents(engine, program, now, jobs, spec.max_concurrency)(), None

    def finish(tx2: Tx, outcome: tuple[AgentResult, list[AgentResult], str | None]) -> Transition:
        return finish_plan(tx2, node, *outcome)

    return Work(work, finish)


def finish_plan(tx: Tx, node: Node, planned: AgentResult, results: list[AgentResult],
                problem: str | None) -> Transition:
    spec = node.spec
    if problem is not None:
        planned.status, planned.error = "failed", problem
    store_result(tx, node, planned)
    if planned.status == "failed":
        return agent_failure(tx, node, planned) or Goto(node.next)
    failures = []
    rows = []
    for result in results:
        rows.append(store_result(tx, node, result))
        if result.status == "failed":
            failures.append(result)
    ok = [r for r in rows if r.status == "ok"]
    worst = max(ok, key=lambda s: severity_order(SignalView(s.agent, s.verdict, s.severity)),
                default=None)
    summary = (f"{len(results)} subtasks: " + ", ".join(
        f"{sum(1 for r in ok if r.verdict == v)} {v}" for v in ("ok", "warn", "block")
        if any(r.verdict == v for r in ok)) + (f", {len(failures)} failed" if failures else ""))
    joined = AgentResult(node.label, "plan", "ok", None, tx.now, [])
    joined.output = AgentOutput(
        verdict=worst.verdict if worst else None, severity=worst.severity if worst else "info",
        summary=summary, rationale="Joined from the executor's results; the most severe wins.",
        evidence=[f"{(r.output or {}).get('subtask', {}).get('title', '?')}: "
                  f"{r.verdict or 'failed'} - {r.summary}" for r in rows][:100])
    store_result(tx, node, joined, agent_label=node.label,
                 extra={"subtasks": [r.output.get("subtask") for r in rows]})
    tx.record("plan", {"plan": node.label, "planner": spec.planner, "executor": spec.executor,
                      "subtasks": [str((r.output or {}).get("subtask", {}).get("title", ""))
                                   for r in rows],
                      "verdict": joined.output.verdict, "summary": summary}, node=node.key)
    for result in sorted(failures, key=lambda r: not r.setup):  # setup problems first
        transition = agent_failure(tx, node, result)
        if transition is not None:
            return transition
    return check_token_budget(tx, node) or Goto(node.next)
