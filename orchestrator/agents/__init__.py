"""Agents produce signals. Kinds: `rules` (CEL, offline), `python` (a callable)."""

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
from orchestrator.spec import PythonAgent, RulesAgent

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
    raise ValueError(f"agent {name!r}: unsupported kind {spec.kind!r}")
