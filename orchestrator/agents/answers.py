"""What an llm agent must answer, as a JSON schema for the server and as a validator for
what comes back.

An llm agent answers one kind of question, decided by the step that uses it: a signal
(parallel, agent, a plan's executor), a branch and why (a route's router), or subtasks (a
plan's planner). The schema goes to the server as structured output; the same rules are
checked here, because a server in JSON mode (or one that ignores schemas) can answer
anything. An answer that does not validate is never repaired or guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.agents.base import AgentOutput
from orchestrator.spec import Flow, Severity, Step, Verdict

RoleKind = Literal["signal", "router", "planner"]
SEVERITIES = ["info", "low", "medium", "high", "critical"]
_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.DOTALL)


@dataclass(frozen=True)
class Role:
    kind: RoleKind
    branches: tuple[str, ...] = ()  # routers: the branches they may pick, `done` included


def agent_uses(flow: Flow) -> Iterator[tuple[tuple, str, Role]]:
    """Every (path, agent, role) where a step runs an agent."""

    def walk(steps: list[Step], path: tuple) -> Iterator[tuple[tuple, str, Role]]:
        for i, step in enumerate(steps):
            here = path + (i, step.kind)
            body = step.body
            if step.kind == "parallel":
                for name in body.agents:
                    yield here + ("agents",), name, Role("signal")
            elif step.kind == "agent":
                yield here + ("agent",), body.agent, Role("signal")
            elif step.kind == "plan":
                yield here + ("planner",), body.planner, Role("planner")
                yield here + ("executor",), body.executor, Role("signal")
            elif step.kind == "route":
                branches = tuple(sorted(body.branches)) + (("done",) if body.repeat else ())
                yield here + ("agent",), body.agent, Role("router", branches)
                for branch, inner in body.branches.items():
                    if isinstance(inner, list):
                        yield from walk(inner, here + ("branches", branch))

    yield from walk(flow.steps, ("steps",))
    for name, block in flow.blocks.items():
        yield from walk(block, ("blocks", name))


def role_of(flow: Flow, agent: str) -> Role:
    """The agent's role; a router used by several routes may pick any of their branches
    (each route still refuses a branch that is not its own)."""
    roles = [role for _, name, role in agent_uses(flow) if name == agent]
    if not roles:
        return Role("signal")
    kind = roles[0].kind
    branches = sorted({b for r in roles for b in r.branches})
    return Role(kind, tuple(branches))


# -- answers ----------------------------------------------------------------------------
class _Answer(BaseModel):
    # Extra keys are dropped rather than refused: they carry nothing Baton would use.
    model_config = ConfigDict(extra="ignore")


class SignalAnswer(_Answer):
    verdict: Verdict
    severity: Severity
    confidence: float = Field(ge=0, le=1)
    summary: str = Field(min_length=1, max_length=4000)
    rationale: str = Field(default="", max_length=20000)
    evidence: list[str] = Field(default_factory=list, max_length=100)


class RouterAnswer(_Answer):
    branch: str = Field(min_length=1, max_length=200)
    why: str = Field(min_length=1, max_length=4000)


class PlannedSubtask(_Answer):
    title: str = Field(min_length=1, max_length=500)
    detail: str = Field(default="", max_length=4000)


class PlannerAnswer(_Answer):
    summary: str = Field(default="", max_length=4000)
    subtasks: list[PlannedSubtask] = Field(max_length=100)


def json_schema(role: Role) -> dict[str, Any]:
    """The schema sent as structured output (OpenAI's strict subset: every property
    required, no additional properties, no numeric bounds; bounds are checked here)."""
    if role.kind == "router":
        properties: dict[str, Any] = {
            "branch": {"type": "string", "enum": list(role.branches),
                       "description": "the branch the flow takes next"},
            "why": {"type": "string", "description": "why this branch, in one or two sentences"},
        }
    elif role.kind == "planner":
        subtask = {"type": "object", "additionalProperties": False, "required": ["title", "detail"],
                   "properties": {"title": {"type": "string", "description": "a short name"},
                                  "detail": {"type": "string", "description": "what to do"}}}
        properties = {
            "summary": {"type": "string", "description": "the plan in one sentence"},
            "subtasks": {"type": "array", "items": subtask},
        }
    else:
        properties = {
            "verdict": {"type": "string", "enum": ["ok", "warn", "block"]},
            "severity": {"type": "string", "enum": SEVERITIES},
            "confidence": {"type": "number", "description": "from 0 (a guess) to 1 (certain)"},
            "summary": {"type": "string", "description": "one sentence a busy approver reads"},
            "rationale": {"type": "string", "description": "the reasoning behind the verdict"},
            "evidence": {"type": "array", "items": {"type": "string"},
                         "description": "facts from the data that support the verdict"},
        }
    return {"type": "object", "additionalProperties": False, "required": list(properties),
            "properties": properties}


def schema_name(role: Role) -> str:
    return {"signal": "baton_signal", "router": "baton_route", "planner": "baton_plan"}[role.kind]


def describe(role: Role) -> str:
    """The answer's fields in words, for the system message (servers in JSON mode, and
    models that read instructions better than schemas)."""
    if role.kind == "router":
        return ("Answer with one JSON object with exactly these fields:\n"
                f'- "branch": one of {", ".join(json.dumps(b) for b in role.branches)}\n'
                '- "why": why this branch, in one or two sentences')
    if role.kind == "planner":
        return ("Answer with one JSON object with exactly these fields:\n"
                '- "summary": the plan in one sentence\n'
                '- "subtasks": a list of objects, each with "title" (a short name) and '
                '"detail" (what to do)')
    return ("Answer with one JSON object with exactly these fields:\n"
            '- "verdict": "ok" (nothing stands in the way), "warn" (a person should look) or '
            '"block" (this must not go ahead)\n'
            '- "severity": one of "info", "low", "medium", "high", "critical"\n'
            '- "confidence": a number from 0 to 1\n'
            '- "summary": one sentence a busy approver reads\n'
            '- "rationale": the reasoning behind the verdict\n'
            '- "evidence": a list of short facts from the data that support it')


class InvalidAnswer(ValueError):
    """The model's text is not a valid answer; the message says why, for the model's one
    chance to correct it and for the trace."""


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "answer"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def parse_answer(text: str | None, role: Role) -> AgentOutput:
    """Validate the model's text as the role's answer. Raises InvalidAnswer."""
    if text is None or not text.strip():
        raise InvalidAnswer("the answer was empty; expected one JSON object")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:  # some local servers wrap JSON mode output in a Markdown fence
        body = fenced.group(1).strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidAnswer(f"the answer is not valid JSON ({exc.msg} at line {exc.lineno}, "
                            f"column {exc.colno}); expected one JSON object") from None
    if not isinstance(data, dict):
        raise InvalidAnswer(f"the answer is a JSON {type(data).__name__}; expected one JSON object")
    try:
        if role.kind == "router":
            route = RouterAnswer.model_validate(data)
            return AgentOutput(branch=route.branch, why=route.why)
        if role.kind == "planner":
            plan = PlannerAnswer.model_validate(data)
            return AgentOutput(summary=plan.summary,
                               subtasks=[s.model_dump() for s in plan.subtasks])
        signal = SignalAnswer.model_validate(data)
    except ValidationError as exc:
        raise InvalidAnswer(f"the answer does not match the schema: {_problems(exc)}") from None
    return AgentOutput(**signal.model_dump())
