"""Agent steps (`parallel`, `agent`): the agents' calls, made outside the transaction, and
their signals, stored in the next one."""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from gates.options import Option
from orchestrator import gating
from orchestrator.agents import AgentContext, AgentResult, build_agent, run_agent
from orchestrator.agents.base import Attempt
from orchestrator.callables import CallableError
from orchestrator.failpoints import crash_point
from orchestrator.program import Node
from orchestrator.runtime import Finish, Goto, StoredSignal, Transition, Tx, Wait, Work
from orchestrator.steps.limits import check_token_budget

log = structlog.get_logger("baton.steps")
MAX_TRACE_TEXT = 4000


def jsonable(value: Any) -> Any:
    """`value` as it reads back from JSON (`json.loads(json.dumps(value, default=str))`),
    by an encoder built once: `json.dumps` with `default` builds a new one per call."""
    return _decode(_encode(value))


_encode = json.JSONEncoder(default=str).encode
_decode = json.JSONDecoder().decode


def _clip(text: str | None, limit: int = MAX_TRACE_TEXT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters]"


def agent_context(tx: Tx, name: str, subtask: dict[str, Any] | None = None,
                  cel: dict[str, Any] | None = None) -> AgentContext:
    cel = cel if cel is not None else tx.conditions()
    return AgentContext(run=tx.run.ref, flow=tx.run.flow_name, agent=name,
                        inputs=dict(tx.run.inputs), signals=cel["signals"],
                        comments=list(tx.run.context.get("comments", [])), conditions=cel,
                        subtask=subtask)


def _failed_result(tx_now: Any, name: str, kind: str, error: str,
                   subtask: dict[str, Any] | None = None) -> AgentResult:
    return AgentResult(name, kind, "failed", None, tx_now, [Attempt(1, tx_now, 0.0, error)],
                       error=error, subtask=subtask)


def run_agents(engine: Any, program: Any, now: Any, jobs: list[tuple[str, AgentContext]],
               limit: int | None) -> Callable[[], list[AgentResult]]:
    """Return the function that makes the agent calls (outside any transaction)."""

    def one(name: str, ctx: AgentContext) -> AgentResult:
        spec = program.flow.agents[name]
        try:
            agent = build_agent(program, name, engine.callables, engine.llm)
        except (CallableError, ValueError) as exc:
            return _failed_result(now, name, spec.kind, str(exc), ctx.subtask)
        return run_agent(agent, ctx, timeout=spec.timeout, retry=spec.retry, clock=engine.clock,
                         rng=engine.rng)

    def work() -> list[AgentResult]:
        results: list[AgentResult | None] = [None] * len(jobs)
        slow = []
        for index, (name, ctx) in enumerate(jobs):
            if program.flow.agents[name].kind == "rules":
                results[index] = one(name, ctx)
            else:
                slow.append(index)
        if len(slow) == 1:
            results[slow[0]] = one(*jobs[slow[0]])
        elif slow:
            # The step may ask for fewer calls at once than the operator allows, never more.
            workers = min(len(slow), limit or engine.agent_concurrency, engine.agent_concurrency)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="baton-agents") as pool:
                # Each call keeps the step's log context (run, flow, step).
                futures = {i: pool.submit(contextvars.copy_context().run, one, *jobs[i])
                           for i in slow}
                for index, future in futures.items():
                    results[index] = future.result()
        crash_point("agents.done")
        return [r for r in results if r is not None]

    return work


def store_result(tx: Tx, node: Node | str, result: AgentResult, *, agent_label: str | None = None,
                 extra: dict[str, Any] | None = None, actor: str = "baton") -> StoredSignal:
    node_key = node if isinstance(node, str) else node.key
    out = result.output
    output: dict[str, Any] = {}
    if out is not None:
        if out.branch is not None:
            output["branch"] = out.branch
        if out.why:
            output["why"] = out.why
        if out.subtasks is not None:
            output["subtasks"] = jsonable(out.subtasks)
    if result.subtask is not None:
        output["subtask"] = jsonable(result.subtask)
    if extra:
        output.update(extra)
    tokens_in = (out.tokens_in if out else 0) + int(result.spent["tokens_in"])
    tokens_out = (out.tokens_out if out else 0) + int(result.spent["tokens_out"])
    cost = (out.cost if out else 0.0) + float(result.spent["cost"])
    signal = tx.add_signal({
        "run_id": tx.run.id, "node": node_key, "agent": agent_label or result.agent,
        "agent_kind": result.kind, "status": result.status,
        "verdict": out.verdict if out else None, "severity": out.severity if out else None,
        "confidence": out.confidence if out else None, "summary": out.summary if out else "",
        "rationale": out.rationale if out else "", "evidence": list(out.evidence) if out else [],
        "output": output, "error": result.error, "attempts": len(result.attempts),
        "tokens_in": tokens_in, "tokens_out": tokens_out,
        "latency_ms": round(result.latency_ms, 3), "cost": cost,
        "model": out.model if out else None, "started_at": result.started_at,
        "created_at": tx.now,
    })
    crash_point("signal.stored")
    tx.run.tokens_used += tokens_in + tokens_out
    data: dict[str, Any] = {"agent": signal.agent, "kind": result.kind, "status": result.status,
                            "attempts": signal.attempts, "latency_ms": signal.latency_ms}
    if out is not None:
        data.update({"verdict": out.verdict, "severity": out.severity,
                     "confidence": out.confidence, "summary": _clip(out.summary),
                     "rationale": _clip(out.rationale)})
        if out.evidence:
            data["evidence"] = [_clip(e, 500) for e in out.evidence[:20]]
    if tokens_in or tokens_out or signal.cost or signal.model:
        data.update({"tokens_in": tokens_in, "tokens_out": tokens_out,
                     "cost": signal.cost, "model": signal.model})
    retries = [{"attempt": a.number, "error": _clip(a.error, 500), "retry_in_s": a.retry_in}
               for a in result.attempts if a.error]
    if retries:
        data["failed_attempts"] = retries
    if result.error:
        data["error"] = _clip(result.error, 1000)
    if result.setup:
        data["setup"] = True  # the operator's to fix (docs/llm.md, "Setup checks")
    if result.raw is not None:
        data["raw"] = _clip(result.raw)
    if output:
        data["output"] = {k: v for k, v in output.items() if k != "subtasks"} | (
            {"subtasks": len(output["subtasks"])} if "subtasks" in output else {})
    tx.record("signal" if result.status == "ok" else "agent_failed", data, node=node_key, actor=actor)
    return signal


def agent_failure(tx: Tx, node: Node, result: AgentResult) -> Transition | None:
    """Apply the agent's on_failure: fail the run, carry on, or ask a person. A setup problem
    (no key, a server that cannot be reached or refuses the key, an unknown model) stops the
    run whatever on_failure says: approvers cannot fix it, and a flow that goes on without
    the signal would decide on less than its author meant. The requester is told."""
    tries = len(result.attempts)
    after = f" after {tries} attempts" if tries > 1 else ""
    if result.setup:
        log.warning("llm_setup_failed", run=tx.run.ref, flow=tx.run.flow_name,
                    agent=result.agent, error=result.error)
        return Finish("failed", "setup",
                      f"agent {result.agent!r} could not reach its model{after}: {result.error}. This is "
                      "a setup problem for the Baton operator (docs/llm.md, \"Setup checks\"); "
                      "nobody was asked to decide")
    spec = tx.program.flow.agents.get(result.agent)
    policy = spec.on_failure if spec else "fail"
    if policy == "continue":
        return None
    reason = f"agent {result.agent!r} failed{after}: {result.error}"
    if policy == "escalate" and spec is not None and spec.escalation:
        chain = tx.program.chains[spec.escalation]
        options = [Option("retry", "Retry the agent", "retry", "primary"),
                   Option("continue", "Continue without it", "approve"),
                   Option("fail", "Fail the run", "reject", "danger")]
        gating.open_gate(tx, node, kind="agent", key=f"{result.agent}-failed",
                         title=f"Agent {result.agent} failed",
                         question=_clip(reason, 1500) or "", approver_specs=[],
                         options=options, chain=chain, policy={"agent": result.agent})
        return Wait()
    return Finish("failed", "agent_failed", reason)


def _finish_agents(node: Node) -> Callable[[Tx, Any], Transition]:
    def finish(tx: Tx, results: list[AgentResult]) -> Transition:
        failures = []
        for result in results:
            store_result(tx, node, result)
            if result.status == "failed":
                failures.append(result)
        for result in sorted(failures, key=lambda r: not r.setup):  # setup problems first
            transition = agent_failure(tx, node, result)
            if transition is not None:
                return transition
        return check_token_budget(tx, node) or Goto(node.next)

    return finish


def _all_rules(tx: Tx, names: list[str]) -> bool:
    return all(tx.program.flow.agents[name].kind == "rules" for name in names)


def step_parallel(tx: Tx, node: Node) -> Work:
    names = node.spec.agents
    cel = tx.conditions()  # one CEL context for all of them: they start from the same state
    jobs = [(name, agent_context(tx, name, cel=cel)) for name in names]
    work = run_agents(tx.engine, tx.program, tx.now, jobs, node.spec.max_concurrency)
    return Work(work, _finish_agents(node), inline=_all_rules(tx, names))


def step_agent(tx: Tx, node: Node) -> Work:
    jobs = [(node.spec.agent, agent_context(tx, node.spec.agent))]
    return Work(run_agents(tx.engine, tx.program, tx.now, jobs, 1), _finish_agents(node),
                inline=_all_rules(tx, [node.spec.agent]))
