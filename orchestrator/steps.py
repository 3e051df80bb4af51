"""One handler per step kind.

`begin(tx, node)` runs inside the run's write transaction and either settles the step
there (gate, boundary, conflict) or returns `Work`: the slow part (agents, an action),
which the engine runs outside any transaction and hands back to `finish` in a new one.
"""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog

from gates.boundaries import check_boundary, lookup
from gates.conditions import ConditionError
from gates.conflicts import (
    VERDICT_RANK,
    SignalView,
    follow_effects,
    followed,
    nothing_to_compare,
    resolve,
    severity_order,
)
from gates.options import Option
from gates.recheck import reads_inputs
from orchestrator import external, gating, recheck
from orchestrator.agents import AgentContext, AgentOutput, AgentResult, build_agent, run_agent
from orchestrator.agents.base import Attempt, _call_with_timeout, backoff_delay
from orchestrator.callables import CallableError
from orchestrator.context import signal_view
from orchestrator.failpoints import crash_point
from orchestrator.follow import apply_follow, effect_words, four_eyes_at_stake
from orchestrator.gating import shown_to_decider
from orchestrator.program import Node
from orchestrator.runtime import Finish, Goto, Hold, StoredSignal, Transition, Tx, Wait, Work, latest_signals
from orchestrator.spec import RetrySpec
from storage import actions
from storage.records import Action
from storage.runs import halt_state

log = structlog.get_logger("baton.steps")
MAX_TRACE_TEXT = 4000


def begin(tx: Tx, node: Node) -> Transition | Work:
    return _HANDLERS[node.kind](tx, node)


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _clip(text: str | None, limit: int = MAX_TRACE_TEXT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters]"


# -- agents -----------------------------------------------------------------------------------
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
    tx.trace("signal" if result.status == "ok" else "agent_failed", data, node=node_key, actor=actor)
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


# -- limits -----------------------------------------------------------------------------------
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
    tx.trace("boundary", data, node=node.key)
    tx.emit("boundary_violated", {"boundary": f"limits.{guard}", "message": reason,
                                  "on_violation": limits.on_violation})
    if limits.on_violation == "escalate" and limits.escalation:
        chain = tx.program.chains[limits.escalation]
        options = [Option("approve", "Let it continue", "approve", "primary"),
                   Option("reject", "Stop the run", "reject", "danger")]
        gating.open_gate(tx, node, kind="limit", key=f"limits-{guard}",
                         title="A run hit its loop guard", question=reason, approver_specs=[],
                         options=options, chain=chain, policy={"guard": guard, "limit": limit})
        return Wait()
    return Finish("stopped", "loop_guard", reason)


# -- gate ---------------------------------------------------------------------------------------
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
    # does not lift it); later visits ask `when` again (gating.close_gate).
    required = tx.run.context.get("required_gates", {}).get(node.key)
    if required is not None:
        needed = True
    skipped = [k for k in tx.run.context.get("skipped_gates", []) if k != node.key]
    if not needed:
        if reads_inputs(condition):  # an approver's edit that makes `when` hold must pass it
            tx.run.context = {**tx.run.context, "skipped_gates": [*skipped, node.key]}
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        tx.trace("gate_skipped", {"gate": node.label, "when": spec.when, "values": values,
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


# -- conflict -------------------------------------------------------------------------------------
def _settling(tx: Tx, node: Node, missing: list[str]) -> bool:
    """The settle window (like Alertmanager's group_wait): wait a little for signals that
    have not arrived, so late ones join this conflict instead of starting another."""
    spec = node.spec
    settles = dict(tx.run.context.get("settles", {}))
    if not spec.settle or not missing or node.key in settles:
        return False
    until = tx.now + spec.settle
    token = f"{node.key}#{tx.run.visits.get(node.key, 1)}"
    settles[node.key] = token
    tx.run.context = {**tx.run.context, "settles": settles}
    gating.add_timer(tx, None, "settle", until, token=token, node=node.key)
    tx.trace("conflict_settling", {"conflict": node.label, "waiting_for": missing,
                                   "until": until.isoformat()}, node=node.key)
    return True


def step_conflict(tx: Tx, node: Node) -> Transition:
    spec = node.spec
    signals = tx.signals()
    if _settling(tx, node, [name for name in spec.among if name not in signals]):
        return Wait()
    if node.key in tx.run.context.get("settles", {}):
        settles = {k: v for k, v in tx.run.context["settles"].items() if k != node.key}
        tx.run.context = {**tx.run.context, "settles": settles}
    views = {name: (SignalView(name, signals[name].verdict, signals[name].severity,
                               signals[name].status == "failed") if name in signals else None)
             for name in spec.among}
    result = resolve(views, policy=spec.on_disagreement, priority=spec.priority,
                     compare=spec.compare)
    data: dict[str, Any] = {"conflict": node.label, "among": list(spec.among),
                            "verdicts": result.verdicts, "agreed": result.agreed,
                            "policy": spec.on_disagreement, "why": result.explanation}
    if result.abstained:
        data["abstained"] = list(result.abstained)
    if nothing_to_compare(views):
        # Not a disagreement: nobody is asked to choose between no signals. The run does
        # what the flow says following no signal does (then.none; by default as for warn).
        data.update(agreed=False, skipped=True,
                    why="nothing to compare: no agent gave a signal ("
                        + ", ".join(spec.among) + " failed or are missing)")
        transition, record = apply_follow(tx, node, {
            "agreed": False, "winner": "", "policy": spec.on_disagreement, "verdict": "",
            "severity": "", "skipped": True})
        data.update(followed="none", effect=record["effect"], then=effect_words(record))
        tx.trace("conflict", data, node=node.key)
        return transition
    if result.winner is not None and not result.needs_human and not result.escalate:
        winner = signals[result.winner]
        transition, record = apply_follow(tx, node, {
            "agreed": result.agreed, "winner": result.winner, "policy": spec.on_disagreement,
            "verdict": winner.verdict or "", "severity": winner.severity or ""})
        data["winner"] = result.winner
        data["winning_signal"] = {"agent": result.winner, "verdict": winner.verdict,
                                  "severity": winner.severity}
        data.update(followed=record["followed"], effect=record["effect"],
                    then=effect_words(record))
        tx.trace("conflict", data, node=node.key)
        return transition
    tx.trace("conflict", data, node=node.key)
    chain = tx.program.chains.get(spec.escalation) if spec.escalation else None
    candidates = [n for n in spec.among if views[n] is not None and not views[n].abstains]
    ranked = sorted(candidates, key=lambda n: severity_order(views[n]), reverse=True)  # type: ignore[arg-type]
    options = [Option(f"follow_{n}", f"Follow {n} ({views[n].verdict})", "approve",  # type: ignore[union-attr]
                      "danger" if VERDICT_RANK.get(views[n].verdict or "ok", 0) == 2 else None,  # type: ignore[union-attr]
                      spec.reason_required) for n in ranked]
    if chain is not None:
        options.append(Option("escalate", "Escalate", "escalate"))
    if not options:
        options = [Option("reject", "Stop the run", "reject", "danger")]
    deciders = list(spec.deciders or [])
    gating.open_gate(
        tx, node, kind="conflict", key=node.label,
        title="Agents disagree: which signal should the run follow?",
        question=f"{result.explanation}. {choice_effects(tx, node, ranked, views)}",
        approver_specs=deciders, options=options, forbid_requester=four_eyes_at_stake(tx, node),
        # the signals as the card shows them: a choice follows what the person saw, even if
        # an agent sends another signal before they click
        policy={"policy": spec.on_disagreement, "among": list(spec.among),
                "choices": {n: {"verdict": views[n].verdict or "",  # type: ignore[union-attr]
                                "severity": views[n].severity or ""}  # type: ignore[union-attr]
                            for n in ranked}},
        shown=shown_to_decider(tx, list(spec.among)), chain=chain)
    return Wait()


def choice_effects(tx: Tx, node: Node, candidates: list[str],
                   views: dict[str, SignalView | None]) -> str:
    """What each choice on a conflict card does, so the person choosing knows."""
    said = []
    for verdict in dict.fromkeys(views[n].verdict for n in candidates if views[n] is not None):
        record = {"effect": str(follow_effects(node.spec.then)[followed(verdict)]),
                  "gate": tx.node(node.next_gate).label if node.next_gate else None}
        said.append(f"following {verdict} means {effect_words(record)}")
    text = "; ".join(said)
    return f"{text[:1].upper()}{text[1:]}." if text else ""


# -- boundary -------------------------------------------------------------------------------------
def step_boundary(tx: Tx, node: Node) -> Transition:
    spec = node.spec
    check = check_boundary(node.label, node.conditions["check"], tx.conditions(), spec.message)
    data = check.as_dict()
    data["on_violation"] = spec.on_violation
    tx.trace("boundary", data, node=node.key)
    tx.run.context = {**tx.run.context, "boundaries": [
        *tx.run.context.get("boundaries", []),
        {"boundary": node.label, "check": spec.check, "passed": check.passed, "node": node.key}]}
    if check.passed:
        return Goto(node.next)
    reason = gating.violation_reason(node, check)
    tx.emit("boundary_violated", {"boundary": node.label, "check": spec.check,
                                  "values": check.values, "message": reason,
                                  "on_violation": spec.on_violation})
    if spec.on_violation == "stop":
        return Finish("stopped", "boundary", reason)
    gating.open_boundary_gate(tx, node, check, reason, edited_by=recheck.editors_behind(
        tx, node.conditions["check"], boundary=True))
    return Wait()


# -- action ---------------------------------------------------------------------------------------
@dataclass
class ActionContext:
    """What an action callable receives. `idempotency_key` is stable for the run and
    step: pass it on to the system the action calls, so that system can refuse a repeat."""

    run: str
    flow: str
    action: str
    idempotency_key: str
    inputs: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    read_signals: Callable[[], dict[str, dict[str, Any]]] = field(default=dict, repr=False)
    _signals: dict[str, dict[str, Any]] | None = field(default=None, init=False, repr=False)

    @property
    def signals(self) -> dict[str, dict[str, Any]]:
        """The run's latest signal of each agent, as conditions see them; read when first
        asked (most actions never do)."""
        if self._signals is None:
            self._signals = self.read_signals()
        return self._signals


@dataclass
class ActionOutcome:
    ok: bool
    result: Any = None
    error: str | None = None
    timed_out: bool = False
    attempts: int = 1
    latency_ms: float = 0.0


def step_action(tx: Tx, node: Node) -> Transition | Work:
    spec = node.spec
    state = halt_state(tx.w)
    if state.halted:
        return Hold(f"emergency stop by {tx.org.display(state.halted_by or '?')}"
                    + (f": {state.halt_reason}" if state.halt_reason else ""))
    key = f"{tx.run.ref}:{node.key}"
    # The usual case, a first start, is one INSERT. An action that has a row (a retry a
    # decision in this transaction asked for, a restart) is then read, after what this
    # transaction changed on it is written.
    started = actions.start_action(tx.w, {
        "run_id": tx.run.id, "node": node.key, "idempotency_key": key, "call": spec.call,
        "status": "started", "started_at": tx.now})
    if started is not None:
        action_id, attempts = started.id, 1
        tx.trace("action_started", {"action": node.label, "call": spec.call,
                                    "idempotency_key": key}, node=node.key)
    else:
        action = actions.action_by_key(tx.w, key)
        if action.status == "done":
            tx.trace("action_skipped", {"action": node.label, "idempotency_key": key,
                                        "why": "already ran for this run (at most once)"},
                     node=node.key)
            return Goto(node.next)
        if not (action.status == "retry"
                or (action.status in ("started", "unknown") and spec.idempotent)):
            return unknown_action(tx, node, action, "it was in flight when Baton stopped; it "
                                                    "may or may not have run")
        why = ("a person asked to run it again" if action.status == "retry" else
               "found in flight after a restart; the action is idempotent, so it runs again")
        action.status = "started"
        action.attempts += 1
        tx.trace("action_started", {"action": node.label, "call": spec.call,
                                    "idempotency_key": key, "attempt": action.attempts,
                                    "why": why}, node=node.key)
        action_id, attempts = action.id, action.attempts
    engine = tx.engine
    run_id = tx.run.id
    assert run_id is not None

    def read_signals() -> dict[str, dict[str, Any]]:  # after commit; signals only get added
        with engine.db.read() as s:
            return {name: signal_view(found) for name, found in latest_signals(s, run_id).items()}

    context = ActionContext(run=tx.run.ref, flow=tx.run.flow_name, action=node.label,
                            idempotency_key=key, inputs=dict(tx.run.inputs),
                            params=dict(spec.params), attempt=attempts,
                            read_signals=read_signals)

    def call() -> ActionOutcome:
        return run_action(engine, spec.call, context, spec.timeout, spec.retry, spec.idempotent)

    def finish(tx2: Tx, outcome: ActionOutcome) -> Transition:
        return finish_action(tx2, node, action_id, outcome)

    return Work(call, finish)


def run_action(engine: Any, dotted: str, context: ActionContext, timeout: Any,
               retry: RetrySpec, idempotent: bool) -> ActionOutcome:
    try:
        fn = engine.callables.load(dotted)
    except CallableError as exc:
        return ActionOutcome(False, error=str(exc), attempts=0)
    attempts = retry.attempts if idempotent else 1
    first = context.attempt  # attempts already made before a restart or a retry decision
    started = time.perf_counter()
    error = None
    timed_out = False
    crash_point("action.started")
    for attempt in range(1, attempts + 1):
        context.attempt = first + attempt - 1
        try:
            result = _call_with_timeout(lambda: fn(context), timeout)
            crash_point("action.done")
            return ActionOutcome(True, jsonable(result) if result is not None else None,
                                 attempts=attempt,
                                 latency_ms=(time.perf_counter() - started) * 1000)
        except Exception as exc:
            timed_out = str(exc).startswith("timed out after")
            error = str(exc) if timed_out else f"{type(exc).__name__}: {exc}"
            if attempt < attempts:
                engine.clock.sleep(backoff_delay(retry, attempt, engine.rng))
    return ActionOutcome(False, error=error, timed_out=timed_out, attempts=attempts,
                         latency_ms=(time.perf_counter() - started) * 1000)


def finish_action(tx: Tx, node: Node, action_id: int | None, outcome: ActionOutcome) -> Transition:
    key = f"{tx.run.ref}:{node.key}"
    data = {"action": node.label, "idempotency_key": key,
            "attempts": outcome.attempts, "latency_ms": round(outcome.latency_ms, 3)}
    if outcome.ok:  # the usual case: a plain UPDATE
        assert action_id is not None
        actions.mark_done(tx.w, action_id, {"value": outcome.result}, tx.now)
        tx.trace("action_done", {**data, "result": outcome.result}, node=node.key)
        return Goto(node.next)
    action = actions.get_action(tx.w, action_id)
    assert action is not None
    if outcome.timed_out and not node.spec.idempotent:
        return unknown_action(tx, node, action, f"it did not answer in time ({outcome.error})")
    action.status = "failed"
    action.error = outcome.error
    action.finished_at = tx.now
    tx.trace("action_failed", {**data, "error": outcome.error}, node=node.key)
    return Finish("failed", "action_failed", f"action '{node.label}' failed: {outcome.error}")


def unknown_action(tx: Tx, node: Node, action: Action, why: str) -> Transition:
    """An action that may or may not have run: never guess, ask a person."""
    spec = node.spec
    action.status = "unknown"
    reason = f"action '{node.label}' outcome unknown: {why}"
    tx.trace("action_unknown", {"action": node.label, "idempotency_key": action.idempotency_key,
                                "why": why, "on_unknown": spec.on_unknown}, node=node.key)
    if spec.on_unknown == "fail":
        return Finish("failed", "action_unknown", reason)
    options = [Option("done", "It went through: continue", "approve", "primary", True),
               Option("retry", "It did not: run it again", "retry", None, True),
               Option("fail", "Fail the run", "reject", "danger")]
    approvers = list(spec.approvers or [])
    if not approvers:
        approvers = list(tx.org.data.admins)
    gating.open_gate(tx, node, kind="action", key=f"{node.label}-unknown",
                     title=f"Did '{node.label}' run?",
                     question=f"{reason}. Check the target system for idempotency key "
                              f"{action.idempotency_key}.",
                     approver_specs=approvers, options=options,
                     policy={"action_id": action.id}, shown=shown_to_decider(tx, None),
                     chain=tx.program.chains.get(spec.escalation) if spec.escalation else None)
    return Wait()


# -- route (supervisor) -------------------------------------------------------------------------
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
            tx.trace("route_refused", {"route": node.label, "router": spec.agent,
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
    tx.trace("route", {"route": node.label, "router": spec.agent, "branch": branch,
                       "why": _clip(result.output.why or result.output.rationale, 1000),
                       "round": rounds}, node=node.key)
    over = check_token_budget(tx, node)
    if over is not None:
        return over
    if branch == "done":
        return Goto(node.next)
    return Goto(node.branches[branch])


# -- plan (planner-executor) ----------------------------------------------------------------------
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
    tx.trace("plan", {"plan": node.label, "planner": spec.planner, "executor": spec.executor,
                      "subtasks": [str((r.output or {}).get("subtask", {}).get("title", ""))
                                   for r in rows],
                      "verdict": joined.output.verdict, "summary": summary}, node=node.key)
    for result in sorted(failures, key=lambda r: not r.setup):  # setup problems first
        transition = agent_failure(tx, node, result)
        if transition is not None:
            return transition
    return check_token_budget(tx, node) or Goto(node.next)


_HANDLERS: dict[str, Callable[[Tx, Node], Transition | Work]] = {
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
