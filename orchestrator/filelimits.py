"""How big a flow file may be: its bytes (orchestrator/yamlfile.py, before it is read), its
steps, agents and inputs (here, on the parsed YAML, before anything else is validated or
compiled). A flow people can read and approvers can follow is far inside these; docs/flows.md,
"Size limits"."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from orchestrator.errors import Problem
from orchestrator.spec import RetrySpec
from orchestrator.yamlfile import YamlDoc

MAX_STEPS = 200  # every step, those inside route branches and blocks included
MAX_AGENTS = 50
MAX_INPUTS = 50
# An agent call or an action runs in one of the server's few run workers, which waits out
# each timeout and sleeps through each backoff: `timeout: 0.05s` with `backoff: 100000d`
# parked a worker for good, and eight such runs stopped every flow.
MAX_HOLD = timedelta(hours=1)


def _count_steps(items: Any) -> int:
    if not isinstance(items, list):
        return 0
    total = 0
    for item in items:
        total += 1
        route = item.get("route") if isinstance(item, dict) else None
        branches = route.get("branches") if isinstance(route, dict) else None
        if isinstance(branches, dict):
            total += sum(_count_steps(body) for body in branches.values())
    return total


def size_problems(doc: YamlDoc) -> list[Problem]:
    """A flow too large to validate cheaply, named before anything walks it."""
    data = doc.data
    steps = _count_steps(data.get("steps"))
    blocks = data.get("blocks")
    if isinstance(blocks, dict):
        steps += sum(_count_steps(body) for body in blocks.values())
    problems = []
    if steps > MAX_STEPS:
        problems.append(doc.problem(("steps",), f"the flow has {steps} steps (route branches and "
                                                f"blocks included); a flow may have at most "
                                                f"{MAX_STEPS}: split it into several flows"))
    for key, limit in (("agents", MAX_AGENTS), ("inputs", MAX_INPUTS)):
        found = data.get(key)
        if isinstance(found, dict) and len(found) > limit:
            problems.append(doc.problem((key,), f"the flow has {len(found)} {key}; a flow may "
                                                f"have at most {limit}"))
    return problems


def hold_problem(what: str, timeout: timedelta, retry: RetrySpec) -> str | None:
    """Why an agent or action may hold a run worker too long: every attempt may take its
    timeout, and every retry may wait max_backoff (a server's Retry-After is honoured up to
    it)."""
    hold = timeout * retry.attempts + retry.max_backoff * (retry.attempts - 1)
    if hold <= MAX_HOLD:
        return None
    return (f"this {what} may hold one of the server's run workers for {_duration(hold)} "
            f"({retry.attempts} attempt(s) of up to {_duration(timeout)}, waiting up to "
            f"{_duration(retry.max_backoff)} between them); at most {_duration(MAX_HOLD)}: lower "
            "timeout, retry.attempts or retry.max_backoff")


def _duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    unit, size = next(((u, s) for u, s in (("d", 86400), ("h", 3600), ("m", 60))
                       if seconds >= s), ("s", 1))
    return f"{seconds / size:,.2f}".rstrip("0").rstrip(".") + unit
