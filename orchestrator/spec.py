"""The flow-file schema. Documented for users in docs/flows.md.

Every model forbids unknown keys, so a typo (`aprovers:`) is an error at load time
rather than a silently ignored setting. Cross-references (agents, roles, escalation
chains, step ids) and CEL expressions are checked by `orchestrator.loader`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from gates.conflicts import parse_effect
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


class AgentBase(Strict):
    description: str = ""
    timeout: Duration = timedelta(seconds=60)
    retry: RetrySpec = RetrySpec()
    on_failure: Literal["fail", "continue", "escalate"] = "fail"
    escalation: str | None = None


class RulesAgent(AgentBase):
    kind: Literal["rules"]
    rules: list[Rule] = Field(min_length=1)
    otherwise: Rule = Rule(verdict="ok", summary="No rule matched")


class PythonAgent(AgentBase):
    kind: Literal["python"]
    call: str = Field(description="module:function, from a module the configuration allows")
    params: dict[str, Any] = {}

    @field_validator("call")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*\Z", value):
            raise ValueError(f"expected module.path:function, got {value!r}")
        return value


class ExternalAgent(AgentBase):
    """A signal that arrives from outside the run (an analyst, another system), submitted
    with `baton signal` by someone the flow names. A conflict step can wait for it
    (`settle`)."""

    kind: Literal["external"]
    submitters: NameList = Field(min_length=1, description="who may submit this signal")


API_KEY_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
ResponseFormat = Literal["auto", "json_schema", "json_object"]


def _check_base_url(value: str | None) -> str | None:
    if value is not None and not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"base_url must be an http:// or https:// URL, got {value!r}")
    return value


def _check_key_env(value: str | None) -> str | None:
    if value is not None and not API_KEY_ENV.match(value):
        raise ValueError(f"api_key_env names an environment variable (such as OLLAMA_API_KEY), "
                         f"got {value!r}; never put the key itself in a flow file")
    return value


BaseUrl = Annotated[str | None, AfterValidator(_check_base_url)]
KeyEnv = Annotated[str | None, AfterValidator(_check_key_env)]


class LlmDefaults(Strict):
    """The flow's `llm:` section: what its llm agents share unless they say otherwise."""

    model: str | None = Field(default=None, min_length=1)
    base_url: BaseUrl = Field(default=None, description="an OpenAI-compatible server, "
                                                           "such as http://localhost:11434/v1")
    api_key_env: KeyEnv = Field(default=None, description="the variable holding the key")
    response_format: ResponseFormat = "auto"


class LlmAgent(AgentBase):
    """An OpenAI-compatible chat model asked for a structured signal (or, as a router, a
    branch and why; as a planner, subtasks). Inputs and other agents' output reach it as
    delimited data, never as instructions."""

    kind: Literal["llm"]
    model: str | None = Field(default=None, min_length=1)
    instructions: str = Field(min_length=1, max_length=20000)
    input: str | None = Field(default=None, max_length=20000,
                              description="the task text; ${inputs.x}, ${signals.a.summary}, "
                                          "${comments}, ${subtask} insert data as JSON")
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_output_tokens: int = Field(default=1000, ge=16, le=200000)
    base_url: BaseUrl = None
    api_key_env: KeyEnv = None
    response_format: ResponseFormat | None = None
    # Model servers fail transiently (429, 5xx, timeouts): three tries unless told otherwise.
    retry: RetrySpec = RetrySpec(attempts=3, backoff=timedelta(seconds=1))


AgentSpec = Annotated[RulesAgent | PythonAgent | ExternalAgent | LlmAgent,
                      Field(discriminator="kind")]


# -- steps ----------------------------------------------------------------------------
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


# -- escalation -----------------------------------------------------------------------
MAX_CHAIN_SPAN = timedelta(days=3650)  # ten years from a gate's opening, whatever people do

class LevelSpec(Strict):
    notify: NameList = Field(min_length=1)
    wait: Duration
    remind_before: Duration | None = None
    can_decide: bool = True


class EscalationSpec(Strict):
    levels: list[LevelSpec] = Field(min_length=1)
    repeat: int = Field(default=0, ge=0, le=20)
    finally_: Literal["reject", "hold"] = Field(default="reject", alias="finally")
    claim_timeout: Duration = timedelta(hours=1)
    snooze: list[Duration] = [timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4),
                              timedelta(days=1)]
    max_postpone: Duration = Field(
        default=timedelta(days=1),
        description="how much later than its schedule claims and snoozes may push the chain")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _fits_a_calendar(self) -> EscalationSpec:
        # Deadlines are dates: a chain of 3,000,000-day waits failed every run at its gate,
        # and a max_postpone as long made every claim and snooze an internal error.
        # in seconds: the sum of long enough timedeltas overflows before it can be compared
        rounds = sum(lv.wait.total_seconds() for lv in self.levels) * (self.repeat + 1)
        longest = rounds + self.max_postpone.total_seconds() + max(
            [self.claim_timeout.total_seconds(), *(d.total_seconds() for d in self.snooze)])
        if longest > MAX_CHAIN_SPAN.total_seconds():
            raise ValueError(
                f"this chain's waits, rounds, claim timeout, snoozes and max_postpone add up "
                f"to {longest / 86400:,.0f} days; a chain may span at most "
                f"{MAX_CHAIN_SPAN.days:,}")
        return self


class LimitsSpec(Strict):
    max_steps: int = Field(default=200, ge=1, le=MAX_RUN_STEPS)
    max_visits: int = Field(default=20, ge=1, le=MAX_RUN_STEPS,
                            description="times one step may be entered")
    max_duration: Duration = timedelta(days=30)
    token_budget: int | None = Field(default=None, ge=1)
    on_violation: Literal["stop", "escalate"] = "stop"
    escalation: str | None = None


class ScheduleTrigger(Strict):
    """Start a run on a schedule (crontab: minute hour day month weekday)."""

    cron: str
    timezone: str = "UTC"
    inputs: dict[str, Any] = {}
    requester: str = Field(description="who the scheduled runs are started as")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a crontab schedule (minute hour day month "
                             f"weekday, e.g. '0 9 * * MON'): {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; e.g. UTC or Europe/Paris") from None
        return value


class WebhookTrigger(Strict):
    """Start a run by an authenticated `POST /hooks/FLOW` (HTTP mode)."""

    secret_env: str = Field(description="the environment variable holding the shared secret")
    requester: str = Field(description="who the runs are started as")

    @field_validator("secret_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if not re.match(r"^[A-Z_][A-Z0-9_]*\Z", value):
            raise ValueError(f"expected an environment variable name such as "
                             f"BATON_HOOK_SECRET_DEPLOYS, got {value!r}")
        return value  # which names: checked by the loader (orchestrator/reach.py)


class Triggers(Strict):
    schedule: list[ScheduleTrigger] = []
    webhook: WebhookTrigger | None = None


class Flow(Strict):
    name: str
    title: str = ""
    description: str = ""
    version: int | str = 1
    requesters: NameList | None = Field(
        default=None, description="who may start it (default: anyone)")
    inputs: dict[str, InputSpec] = {}
    agents: dict[str, AgentSpec] = {}
    steps: list[Step] = Field(min_length=1)
    blocks: dict[str, list[Step]] = {}
    escalations: dict[str, EscalationSpec] = {}
    limits: LimitsSpec = LimitsSpec()
    llm: LlmDefaults = LlmDefaults()
    triggers: Triggers = Triggers()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "flow name")

    @field_validator("inputs", "agents")
    @classmethod
    def _identifiers(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            _too_long(key, "name")
            if not IDENTIFIER.match(key):
                raise ValueError(f"{key!r} must be a lower-case identifier (letters, digits, "
                                 "'_'), because conditions read it as inputs.NAME or signals.NAME")
        return value

    @field_validator("blocks", "escalations")
    @classmethod
    def _keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            _check_name(key, "name")
        return value
