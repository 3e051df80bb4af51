"""The flow-file schema. Documented for users in docs/flows.md.

Every model forbids unknown keys, so a typo (`aprovers:`) is an error at load time
rather than a silently ignored setting. Cross-references (agents, roles, escalation
chains, step ids) and CEL expressions are checked by `orchestrator.flowcheck`. The building
blocks are in `orchestrator.spec_types`, the steps in `orchestrator.spec_steps`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from orchestrator.spec_steps import (
    STEP_KINDS,
    ActionStep,
    AgentStep,
    BoundaryStep,
    ConflictStep,
    ExternalStep,
    GateStep,
    OptionSpec,
    ParallelStep,
    PlanStep,
    RouteStep,
    Step,
    StepBase,
)
from orchestrator.spec_types import (
    IDENTIFIER,
    MAX_NAME,
    MAX_ROUTE_ROUNDS,
    MAX_RUN_STEPS,
    NAME,
    TOOL,
    Duration,
    InputSpec,
    NameList,
    RetrySpec,
    Rule,
    Severity,
    Strict,
    Subtask,
    Verdict,
    _check_name,
    _duration,
    _names,
    _too_long,
)

__all__ = [
    "IDENTIFIER",
    "MAX_NAME",
    "MAX_ROUTE_ROUNDS",
    "MAX_RUN_STEPS",
    "NAME",
    "STEP_KINDS",
    "TOOL",
    "ActionStep",
    "AgentStep",
    "BoundaryStep",
    "ConflictStep",
    "Duration",
    "ExternalStep",
    "GateStep",
    "InputSpec",
    "NameList",
    "OptionSpec",
    "ParallelStep",
    "PlanStep",
    "RetrySpec",
    "RouteStep",
    "Rule",
    "Severity",
    "Step",
    "StepBase",
    "Strict",
    "Subtask",
    "Verdict",
    "_check_name",
    "_duration",
    "_names",
    "_too_long"
]


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
