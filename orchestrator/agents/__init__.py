"""Agents produce signals. Kinds: `rules` (CEL, offline), `python` (a callable), `llm` (an
OpenAI-compatible chat model, orchestrator/agents/llm.py)."""

from __future__ import annotations

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


def build_agent(program: Program, name: str, callables: CallableLoader) -> Agent:
    spec = program.flow.agents[name]
    if isinstance(spec, RulesAgent):
        return RulesAgentRunner(name, spec, program.agent_conditions[name])
    if isinstance(spec, PythonAgent):
        return PythonAgentRunner(name, spec, callables.load(spec.call))
    if isinstance(spec, LlmAgent):
        return _llm_agent(program, name, spec)
    raise ValueError(f"agent {name!r}: unsupported kind {spec.kind!r}")


def _llm_agent(program: Program, name: str, spec: LlmAgent) -> Agent:
    # Imported here: the openai package takes a while to import, and only llm flows need it.
    from orchestrator.agents.answers import role_of
    from orchestrator.agents.llm import LlmAgentRunner
    from orchestrator.agents.prices import load_prices
    from orchestrator.settings import Settings

    settings = Settings()
    return LlmAgentRunner(name, spec, program.flow.name, program.flow.llm,
                          role_of(program.flow, name), settings.llm_model,
                          load_prices(settings.llm_prices))
