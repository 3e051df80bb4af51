"""The steps of a flow file (part of the schema, orchestrator/spec.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from gates.conflicts import parse_effect
from orchestrator.spec_types import (
    IDENTIFIER,
    MAX_ROUTE_ROUNDS,
    TOOL,
    Duration,
    NameList,
    RetrySpec,
    Strict,
    _check_name,
    _too_long,
)


class StepBase(Strict):
    id: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value, "step id")


class ParallelStep(StepBase):
    agents: NameList = Field(min_length=1)
    max_concurrency: int | None = Field(default=None, ge=1)


class OptionSpec(Strict):
    id: str
    label: str | None = Field(default=None, max_length=75, description="the button's text")
    effect: Literal["approve", "reject", "request_changes"]
    style: Literal["primary", "danger"] | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        _too_long(value, "option id")
        if not IDENTIFIER.match(value):  # `baton decide R-1 OPTION` reads `-` as `_`
            raise ValueError(f"option id {value!r} must be lower-case letters, digits or '_'")
        return value


class GateStep(StepBase):
    when: str = "true"
    title: str | None = None
    ask: str | None = Field(default=None, description="the question shown to approvers")
    approvers: NameList = Field(min_length=1)
    quorum: int = Field(default=1, ge=1)
    forbid_requester: bool = False
    reject_ends: bool = True
    options: list[str | OptionSpec] = Field(default=["approve", "reject"], min_length=1, max_length=10)
    reason_required: NameList | bool = Field(default_factory=list)
    editable: NameList = Field(default_factory=list)
    back_to: str | None = Field(default=None, description="where request_changes sends the run")
    escalation: str | None = None
    show: NameList | None = Field(default=None, description="agents whose signals to show")


class ConflictStep(StepBase):
    among: NameList = Field(min_length=2)
    then: dict[Literal["ok", "warn", "block", "none"], str] = Field(
        default_factory=dict, description="what following each verdict does: continue, stop, "
                                          "gate (the next gate opens) or path:BLOCK")
    on_disagreement: Literal["follow_priority", "most_severe", "ask", "escalate"] = "ask"
    priority: NameList = Field(default_factory=list)
    compare: list[Literal["verdict", "severity"]] = ["verdict"]
    deciders: NameList | None = None
    escalation: str | None = None
    settle: Duration | None = None
    reason_required: bool = True

    @field_validator("then")
    @classmethod
    def _then(cls, value: dict[str, str]) -> dict[str, str]:
        for verdict, effect in value.items():
            try:
                parse_effect(effect)
            except ValueError as exc:
                raise ValueError(f"then.{verdict}: {exc}") from None
        return value


class BoundaryStep(StepBase):
    check: str
    message: str = ""
    on_violation: Literal["stop", "escalate", "gate"] = "stop"
    escalation: str | None = None
    approvers: NameList | None = None


class ActionStep(StepBase):
    call: str
    params: dict[str, Any] = {}
    idempotent: bool = False
    timeout: Duration = timedelta(seconds=60)
    retry: RetrySpec = RetrySpec()
    on_unknown: Literal["escalate", "fail"] = "escalate"
    escalation: str | None = None
    approvers: NameList | None = Field(
        default=None, description="who settles an action whose outcome is unknown")

    @field_validator("call")
    @classmethod
    def _dotted(cls, value: str) -> str:
        from orchestrator.spec import PythonAgent  # the agents' schema imports this module

        return PythonAgent._dotted(value)


class ExternalStep(StepBase):
    """An action the caller performs, not Baton: an agent outside Baton asked for approval
    (API, client, MCP). When the run gets here, Baton answers the caller "approved, with
    exactly these arguments" (the run's inputs after edits and every check before this
    step), and waits for the caller to report the result once."""

    tool: str = Field(description="the caller's tool or function this step approves")
    arguments: NameList | None = Field(
        default=None, description="the inputs handed to the caller as the tool's arguments "
                                  "(default: every input)")
    timeout: Duration = Field(default=timedelta(hours=1),
                              description="how long the caller has to report the result")
    on_unknown: Literal["escalate", "fail"] = "escalate"
    escalation: str | None = None
    approvers: NameList | None = Field(
        default=None, description="who settles an action whose outcome is unknown")

    @field_validator("tool")
    @classmethod
    def _tool(cls, value: str) -> str:
        if not TOOL.match(value):
            raise ValueError(f"tool {value!r} must be a function or tool name: letters, digits, "
                             "'_', '.', '-', at most 100 characters")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(days=30):
            raise ValueError("timeout must be between 1s and 30d")
        return value


class AgentStep(StepBase):
    agent: str


class RouteStep(StepBase):
    agent: str = Field(description="the router agent; it returns a branch and why")
    branches: dict[str, list[Step] | str]
    repeat: bool = Field(default=False, description="supervisor loop: ask the router again "
                                                    "after each branch until it says `done`")
    max_rounds: int = Field(default=10, ge=1, le=MAX_ROUTE_ROUNDS)

    @field_validator("branches")
    @classmethod
    def _branches(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("a route needs at least one branch")
        for name in value:
            _check_name(name, "branch name")
        if "done" in value:
            raise ValueError("'done' is reserved: the router answers done to end a repeat loop")
        return value


class PlanStep(StepBase):
    planner: str
    executor: str
    max_subtasks: int = Field(default=10, ge=1, le=100)
    max_concurrency: int | None = Field(default=None, ge=1)


STEP_KINDS = ("parallel", "agent", "conflict", "gate", "boundary", "action", "external", "route",
              "plan")


class Step(Strict):
    """One step: a mapping with exactly one of the step kinds."""

    parallel: ParallelStep | None = None
    agent: AgentStep | None = None
    conflict: ConflictStep | None = None
    gate: GateStep | None = None
    boundary: BoundaryStep | None = None
    action: ActionStep | None = None
    external: ExternalStep | None = None
    route: RouteStep | None = None
    plan: PlanStep | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("a step is a mapping with one key, such as `gate: {...}`")
        kinds = [k for k in data if k in STEP_KINDS]
        unknown = [k for k in data if k not in STEP_KINDS]
        if unknown:
            raise ValueError(f"unknown step kind {unknown[0]!r}; expected one of: "
                             + ", ".join(STEP_KINDS))
        if len(kinds) != 1:
            raise ValueError("a step has exactly one kind; found: " + ", ".join(kinds))
        kind = kinds[0]
        body = data[kind]
        if kind == "parallel" and isinstance(body, list | str):
            return {kind: {"agents": body}}
        if kind == "agent" and isinstance(body, str):
            return {kind: {"agent": body}}
        return data

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)

    @property
    def body(self) -> Any:
        return getattr(self, self.kind)


RouteStep.model_rebuild()
