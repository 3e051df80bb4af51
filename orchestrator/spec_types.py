"""The building blocks of the flow-file schema (orchestrator/spec.py): names, durations,
strict models, inputs, retries, rules."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)

from gates.durations import parse_duration

# `\Z`, never `$`, which also matches before a final newline: "approve\n" passed as a name and
# went into Slack ids, while no command, condition or template could ever name it.
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\Z")
# Inputs and agents are read from CEL (`inputs.amount`, `signals.risk`): identifiers only.
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*\Z")
# Every name a flow gives (flow, inputs, agents, step ids, options, branches, blocks, chains)
# ends up inside Slack ids: `gate.decide.<option>` and `follow_<agent>` action_ids (at most
# 255 characters), `edit:<input>` block_ids, `{"g":…,"o":"<option>"}` button values (2,000)
# and modal metadata (3,000). At this length every one of them fits with room to spare.
MAX_NAME = 64
# The loop guard's own ceilings: a flow may tighten it, not lift it. Rules agents run inline,
# so a route repeating forever under max_steps 10**9 never returned from `baton run`: 5,000
# rows written in its first 20 s, and on. A run now takes at most 1,000 steps (15 s of one
# worker's time at most, on a busy machine; a 100-round route stops in 2-3 s).
MAX_RUN_STEPS = 1000
MAX_ROUTE_ROUNDS = 100
# A tool as callers name it (a Python function, an MCP tool, an OpenAI function).
TOOL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
Verdict = Literal["ok", "warn", "block"]
Severity = Literal["info", "low", "medium", "high", "critical"]


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(value)


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(lambda d: d.total_seconds(), return_type=float),
]


def _names(value: Any) -> Any:
    """Accept `x` or `[x, y]` where a list of names is expected."""
    return [value] if isinstance(value, str) else value


NameList = Annotated[list[str], BeforeValidator(_names)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _too_long(value: str, what: str) -> None:
    if len(value) > MAX_NAME:
        raise ValueError(f"{what} {value[:40]!r}… is {len(value)} characters long; names have at "
                         f"most {MAX_NAME}, so that the Slack messages built from them fit")


def _check_name(value: str, what: str) -> str:
    _too_long(value, what)
    if not NAME.match(value):
        raise ValueError(f"{what} {value!r} must be lower-case letters, digits, '-' or '_'")
    return value


# -- inputs ---------------------------------------------------------------------------
class InputSpec(Strict):
    type: Literal["string", "number", "integer", "boolean"] = "string"
    required: bool = False
    default: Any = None
    description: str = ""
    choices: list[str | int | float] | None = None
    min: float | None = None
    max: float | None = None
    max_length: int = Field(default=2000, ge=1, le=100_000)


# -- agents ---------------------------------------------------------------------------
class RetrySpec(Strict):
    attempts: int = Field(default=1, ge=1, le=10, description="tries in all, first included")
    backoff: Duration = timedelta(seconds=0.5)
    max_backoff: Duration = timedelta(seconds=30)
    jitter: bool = True


class Subtask(Strict):
    title: str
    input: dict[str, Any] = {}


class Rule(Strict):
    when: str = "true"
    verdict: Verdict | None = None
    severity: Severity = "info"
    confidence: float = Field(default=1.0, ge=0, le=1)
    # A rule's signal is held to what every agent's is (agents/base.py AgentOutput): longer
    # passed validation and failed the agent in every run.
    summary: str = Field(default="", max_length=4000)
    rationale: str = Field(default="", max_length=20000)
    evidence: list[str] = Field(default=[], max_length=100)
    branch: str | None = Field(default=None, description="for router agents: the branch to take")
    why: str | None = Field(default=None, description="for router agents: why this branch")
    subtasks: list[Subtask] | None = Field(default=None, description="for planner agents")
