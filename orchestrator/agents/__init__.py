"""Agents produce signals. Kinds: `rules` (CEL, offline), `python` (a callable), `llm` (an
OpenAI-compatible chat model, orchestrator/agents/llm.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.agents.base import (
    Agent,
    AgentContext,
    AgentFailure,
    AgentOutput,
    AgentResult,
    PermanentAgentFailure,
    run_agent,
)
from orchestrator.agents.python import PythonAgentRunner
from orchestrator.agents.rules import RulesAgentRunner
from orchestrator.callables import CallableLoader
from orchestrator.program import Program
from orchestrator.reach import Reach
from orchestrator.spec import LlmAgent, PythonAgent, RulesAgent

__all__ = [
    "Agent",
    "AgentContext",
    "AgentFailure",
    "AgentOutput",
    "AgentResult",
    "PermanentAgentFailure",
    "build_agent",
    "run_agent",
]


@dataclass(frozen=True)
class LlmDefaults:
    """What the configuration says about llm agents: BATON_LLM_MODEL, BATON_LLM_PRICES, and
    the servers and keys they may use (BATON_LLM_HOSTS, BATON_LLM_KEY_ENVS)."""

    model: str = "gpt-4o-mini"
    prices: Path | None = None
    reach: Reach = field(default_factory=Reach)


def build_agent(program: Program, name: str, callables: CallableLoader,
                llm: LlmDefaults | None = None) -> Agent:
    spec = program.flow.agents[name]
    if isinstance(spec, RulesAgent):
        return RulesAgentRunner(name, spec, program.agent_conditions[name])
    if isinstance(spec, PythonAgent):
        return PythonAgentRunner(name, spec, callables.load(spec.call))
    if isinstance(spec, LlmAgent):
        return _llm_agent(program, name, spec, llm or LlmDefaults())
    raise ValueError(f"agent {name!r}: unsupported kind {spec.kind!r}")


def _llm_agent(program: Program, name: str, spec: LlmAgent, llm: LlmDefaults) -> Agent:
    # Imported here: the openai package takes a while to import, and only llm flows need it.
    from orchestrator.agents.answers import role_of
    from orchestrator.agents.llm import LlmAgentRunner
    from orchestrator.agents.prices import load_prices

    return LlmAgentRunner(name, spec, program.flow.name, program.flow.llm,
                          role_of(program.flow, name), llm.model, load_prices(llm.prices),
                          llm.reach)
