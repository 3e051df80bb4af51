"""What every agent kind shares: the context it gets, the output it must give, and the
runner that applies the per-call timeout, retries with exponential backoff and jitter,
and records a failure (never a guessed signal) after the last attempt."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.spec import RetrySpec, Severity, Verdict
from orchestrator.text import needs_cleaning, well_formed
from orchestrator.workers import CallThreads, CallTimedOut


class AgentOutput(BaseModel):
    """A signal, plus what routers and planners add, plus usage for accounting."""

    model_config = ConfigDict(extra="forbid")

    verdict: Verdict | None = None
    severity: Severity = "info"
    confidence: float = Field(default=1.0, ge=0, le=1)
    summary: str = Field(default="", max_length=4000)
    rationale: str = Field(default="", max_length=20000)
    evidence: list[str] = Field(default_factory=list, max_length=100)
    branch: str | None = None
    why: str | None = None
    subtasks: list[dict[str, Any]] | None = None
    tokens_in: int = Field(default=0, ge=0)
    tokens_out: int = Field(default=0, ge=0)
    cost: float = Field(default=0.0, ge=0)
    model: str | None = None


@dataclass
class AgentContext:
    """What an agent may read. Inputs and other agents' signals are data, never
    instructions: LLM agents pass them delimited, as data."""

    run: str
    flow: str
    agent: str
    inputs: dict[str, Any]
    signals: dict[str, dict[str, Any]]
    comments: list[dict[str, Any]]
    conditions: dict[str, Any]  # the CEL context, for rules agents
    params: dict[str, Any] = field(default_factory=dict)
    subtask: dict[str, Any] | None = None
    attempt: int = 1
    last_error: str | None = None


class AgentFailure(Exception):
    """Raised by an agent for a failure worth retrying (a timeout, a 5xx, a 429).

    `setup`: the failure is the operator's to fix, not the approvers' (a server that cannot
    be reached, a missing or refused key, an unknown model): after the last attempt the run
    stops and tells the requester, rather than asking people to decide around it."""

    def __init__(self, message: str, *, retry_after: float | None = None,
                 raw: str | None = None, usage: dict[str, Any] | None = None,
                 setup: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.raw = raw
        self.usage = usage or {}
        self.setup = setup


class PermanentAgentFailure(AgentFailure):
    """A failure that another attempt cannot fix (a 4xx, a bug, invalid output)."""


class SetupFailure(PermanentAgentFailure):
    """A setup problem another attempt cannot fix: a key that is missing, not allowed or
    refused, a server not allowed, an unknown model."""

    def __init__(self, message: str, **kw: Any) -> None:
        super().__init__(message, setup=True, **kw)


class Agent(Protocol):
    name: str
    kind: str
    inline: bool  # fast and deterministic: run in the caller's thread, no timeout thread

    def run(self, ctx: AgentContext) -> AgentOutput: ...


def validate_output(agent: str, value: Any) -> AgentOutput:
    if isinstance(value, AgentOutput):
        dumped = value.model_dump()  # a fresh copy: cleaned only where there is something to clean
        return AgentOutput.model_validate(well_formed(dumped) if needs_cleaning(dumped) else dumped)
    if not isinstance(value, dict):
        raise PermanentAgentFailure(
            f"agent {agent!r} returned {type(value).__name__}; expected a dict with verdict, "
            "severity, confidence, summary, rationale, evidence")
    try:
        return AgentOutput.model_validate(well_formed(value))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "output"
        raise PermanentAgentFailure(
            f"agent {agent!r} returned invalid output: {where}: {first['msg']}") from None


@dataclass
class Attempt:
    number: int
    started_at: datetime
    latency_ms: float
    error: str | None = None
    retry_in: float | None = None


@dataclass
class AgentResult:
    agent: str
    kind: str
    status: Literal["ok", "failed"]
    output: AgentOutput | None
    started_at: datetime
    attempts: list[Attempt]
    error: str | None = None
    raw: str | None = None
    subtask: dict[str, Any] | None = None
    setup: bool = False  # failed for a setup problem (AgentFailure.setup)
    # tokens and cost of attempts that failed (a model that answered, but invalidly): they are
    # spent all the same, and count toward the run's budget and the agent's cost
    spent: dict[str, float] = field(default_factory=lambda: {"tokens_in": 0, "tokens_out": 0,
                                                             "cost": 0.0})

    @property
    def latency_ms(self) -> float:
        return sum(a.latency_ms for a in self.attempts)


class Clock(Protocol):
    def now(self) -> datetime: ...
    def sleep(self, seconds: float) -> None: ...


def backoff_delay(retry: RetrySpec, attempt: int, rng: random.Random,
                  retry_after: float | None = None) -> float:
    """Exponential backoff with equal jitter; a server's Retry-After is honoured."""
    base = min(retry.max_backoff.total_seconds(),
               retry.backoff.total_seconds() * (2 ** (attempt - 1)))
    delay = base / 2 + rng.uniform(0, base / 2) if retry.jitter else base
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


_CALLS = CallThreads("baton-call")


def _call_with_timeout(fn: Callable[[], Any], timeout: timedelta) -> Any:
    try:
        return _CALLS.call(fn, timeout.total_seconds())
    except CallTimedOut:
        raise AgentFailure(f"timed out after {timeout.total_seconds():g}s") from None


def run_agent(agent: Agent, ctx: AgentContext, *, timeout: timedelta, retry: RetrySpec,
              clock: Clock, rng: random.Random | None = None) -> AgentResult:
    rng = rng or random.Random()
    attempts: list[Attempt] = []
    started = clock.now()
    last_error: str | None = None
    raw: str | None = None
    setup = False  # whether the last failed attempt was a setup problem
    spent = {"tokens_in": 0, "tokens_out": 0, "cost": 0.0}

    def count(exc: BaseException) -> None:
        for key in spent:
            spent[key] += (getattr(exc, "usage", None) or {}).get(key, 0) or 0

    for number in range(1, retry.attempts + 1):
        ctx.attempt = number
        ctx.last_error = last_error
        at = clock.now()
        t0 = time.perf_counter()
        try:
            output = agent.run(ctx) if agent.inline else _call_with_timeout(lambda: agent.run(ctx), timeout)
            output = validate_output(agent.name, output)
            attempts.append(Attempt(number, at, (time.perf_counter() - t0) * 1000))
            return AgentResult(agent.name, agent.kind, "ok", output, started, attempts,
                               subtask=ctx.subtask, spent=spent)
        except PermanentAgentFailure as exc:
            count(exc)
            attempts.append(Attempt(number, at, (time.perf_counter() - t0) * 1000, str(exc)))
            return AgentResult(agent.name, agent.kind, "failed", None, started, attempts,
                               error=str(exc), raw=exc.raw or raw, subtask=ctx.subtask, spent=spent,
                               setup=exc.setup)
        except Exception as exc:  # an agent's own bug counts as a failed attempt
            count(exc)
            message = str(exc) if isinstance(exc, AgentFailure) else f"{type(exc).__name__}: {exc}"
            setup = bool(getattr(exc, "setup", False))
            raw = getattr(exc, "raw", None) or raw
            attempt = Attempt(number, at, (time.perf_counter() - t0) * 1000, message)
            attempts.append(attempt)
            last_error = message
            if number < retry.attempts:
                delay = backoff_delay(retry, number, rng, getattr(exc, "retry_after", None))
                attempt.retry_in = round(delay, 3)
                clock.sleep(delay)
    return AgentResult(agent.name, agent.kind, "failed", None, started, attempts,
                       error=last_error, raw=raw,  # how many attempts: `attempts`
                       subtask=ctx.subtask, spent=spent, setup=setup)
