"""Agents and actions for tests/flows. Real callables, loaded the way users' are."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from orchestrator.agents import AgentFailure

_lock = threading.Lock()
calls: dict[str, int] = {}
spans: list[tuple[str, float, float]] = []


def _count(key: str) -> int:
    with _lock:
        calls[key] = calls.get(key, 0) + 1
        return calls[key]


def slow(ctx: Any) -> dict[str, Any]:
    start = time.monotonic()
    time.sleep(float(ctx.params.get("seconds", 1.0)))
    with _lock:
        spans.append((ctx.agent, start, time.monotonic()))
    return {"verdict": "ok", "summary": f"{ctx.agent} done"}


def flaky(ctx: Any) -> dict[str, Any]:
    """Fails `fail_times` attempts per run, then answers."""
    n = _count(f"flaky:{ctx.run}:{ctx.agent}")
    if n <= int(ctx.params.get("fail_times", 2)):
        retry_after = float(ctx.params.get("retry_after", 0)) or None
        raise AgentFailure(f"upstream 503 (attempt {n})", retry_after=retry_after)
    return {"verdict": "ok", "summary": f"answered on attempt {n}"}


def broken(ctx: Any) -> dict[str, Any]:
    raise RuntimeError("the model server is on fire")


def hangs(ctx: Any) -> dict[str, Any]:
    time.sleep(float(ctx.params.get("seconds", 5)))
    return {"verdict": "ok"}


def bad_output(ctx: Any) -> dict[str, Any]:
    return {"verdict": "maybe", "summary": "not sure"}


def router(ctx: Any) -> dict[str, Any]:
    return {"branch": ctx.params.get("branch", "nowhere"), "why": ctx.params.get("why", "because")}


def record(ctx: Any) -> dict[str, Any]:
    path = os.environ["BATON_EXAMPLE_LEDGER"]
    with _lock, open(path, "a", encoding="utf-8") as ledger:
        ledger.write(json.dumps({"run": ctx.run, "key": ctx.idempotency_key,
                                 "action": ctx.action, "attempt": ctx.attempt,
                                 "inputs": ctx.inputs,
                                 "verdicts": {name: view["verdict"]
                                              for name, view in ctx.signals.items()}}) + "\n")
    return {"ok": True}


def fails(ctx: Any) -> dict[str, Any]:
    raise RuntimeError("payment provider said no")


def hang_action(ctx: Any) -> dict[str, Any]:
    """Writes 'started' to the ledger, then takes its time (a test kills the process)."""
    path = os.environ["BATON_EXAMPLE_LEDGER"]
    with _lock, open(path, "a", encoding="utf-8") as ledger:
        ledger.write(json.dumps({"run": ctx.run, "key": ctx.idempotency_key, "event": "started",
                                 "attempt": ctx.attempt, "pid": os.getpid()}) + "\n")
    time.sleep(float(os.environ.get("TEST_ACTION_SECONDS", "0")))
    return {"ok": True}


held = threading.Event()  # set by a test to let `held_action` return
holding = threading.Event()  # set while `held_action` waits


def held_action(ctx: Any) -> dict[str, Any]:
    """An action that does not answer until the test lets it (at most a minute)."""
    holding.set()
    held.wait(60)
    return {"ok": True}
