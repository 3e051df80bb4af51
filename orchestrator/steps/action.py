"""The `action` step: a side effect, at most once per run and step (its idempotency key)."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog

from gates.options import Option
from orchestrator import gating
from orchestrator.agents.base import _call_with_timeout, backoff_delay
from orchestrator.callables import CallableError
from orchestrator.context import signal_view
from orchestrator.failpoints import crash_point
from orchestrator.gating import shown_to_decider
from orchestrator.program import Node
from orchestrator.runtime import (
    Finish,
    Goto,
    Transition,
    Tx,
    Wait,
    Work,
    hold_if_halted,
    latest_signals,
)
from orchestrator.spec import RetrySpec
from orchestrator.steps.agents import jsonable
from storage import actions
from storage.records import Action

log = structlog.get_logger("baton.steps")


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
    held = hold_if_halted(tx)
    if held:
        return held
    key = f"{tx.run.ref}:{node.key}"
    # The usual case, a first start, is one INSERT. An action that has a row (a retry a
    # decision in this transaction asked for, a restart) is then read, after what this
    # transaction changed on it is written.
    started = actions.start_action(tx.w, {
        "run_id": tx.run.id, "node": node.key, "idempotency_key": key, "call": spec.call,
        "status": "started", "started_at": tx.now})
    if started is not None:
        action_id, attempts = started.id, 1
        tx.record("action_started", {"action": node.label, "call": spec.call,
                                    "idempotency_key": key}, node=node.key)
    else:
        action = actions.action_by_key(tx.w, key)
        if action.status == "done":
            tx.record("action_skipped", {"action": node.label, "idempotency_key": key,
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
        tx.record("action_started", {"action": node.label, "call": spec.call,
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

    def finish(tx2: Tx, outcome: ActionOutcome) -> Transition:
        return finish_action(tx2, node, action_id, outcome)

    if engine.inline and not (spec.idempotent and spec.retry.attempts > 1):
        # The inline engine (the CLI) calls a one-attempt action on its own thread under a
        # watchdog (`Running._watched`), sparing the hand-off to a call thread and back.
        # Retries need the caller free while an attempt hangs: those keep the call thread.
        timeout = spec.timeout.total_seconds()

        def late() -> ActionOutcome:
            return ActionOutcome(False, error=timeout_error(spec.timeout), timed_out=True,
                                 latency_ms=timeout * 1000)

        return Work(lambda: run_action(engine, spec.call, context, spec.timeout, spec.retry,
                                       spec.idempotent, here=True),
                    finish, timeout=timeout, late=late)
    return Work(lambda: run_action(engine, spec.call, context, spec.timeout, spec.retry,
                                   spec.idempotent), finish)


def timeout_error(timeout: timedelta) -> str:
    """What an action that did not answer in time failed with (as `_call_with_timeout` says)."""
    return f"timed out after {timeout.total_seconds():g}s"


def run_action(engine: Any, dotted: str, context: ActionContext, timeout: timedelta,
               retry: RetrySpec, idempotent: bool, *, here: bool = False) -> ActionOutcome:
    """Call the action, with retries when it is idempotent. `here`: on this thread (in a copy
    of its context), its timeout kept by the caller's watchdog; else on a call thread,
    waited for at most `timeout`."""
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
            result = (contextvars.copy_context().run(fn, context) if here else
                      _call_with_timeout(lambda: fn(context), timeout))
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
        tx.record("action_done", {**data, "result": outcome.result}, node=node.key)
        return Goto(node.next)
    action = actions.get_action(tx.w, action_id)
    assert action is not None
    if outcome.timed_out and not node.spec.idempotent:
        return unknown_action(tx, node, action, f"it did not answer in time ({outcome.error})")
    action.status = "failed"
    action.error = outcome.error
    action.finished_at = tx.now
    tx.record("action_failed", {**data, "error": outcome.error}, node=node.key)
    return Finish("failed", "action_failed", f"action '{node.label}' failed: {outcome.error}")


def unknown_action(tx: Tx, node: Node, action: Action, why: str) -> Transition:
    """An action that may or may not have run: never guess, ask a person."""
    spec = node.spec
    action.status = "unknown"
    reason = f"action '{node.label}' outcome unknown: {why}"
    tx.record("action_unknown", {"action": node.label, "idempotency_key": action.idempotency_key,
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
