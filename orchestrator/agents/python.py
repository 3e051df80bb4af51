"""`kind: python`: a callable named by dotted path, from a module the configuration allows.

The callable receives an `AgentContext` and returns a dict (or an `AgentOutput`) with
verdict, severity, confidence, summary, rationale and evidence; routers add `branch` and
`why`, planners add `subtasks`. Raising `AgentFailure` asks for a retry; any other
exception also counts as a failed attempt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.agents.base import AgentContext, AgentOutput, validate_output
from orchestrator.spec import PythonAgent


class PythonAgentRunner:
    kind = "python"
    inline = False

    def __init__(self, name: str, spec: PythonAgent, fn: Callable[..., Any]) -> None:
        self.name = name
        self.spec = spec
        self.fn = fn

    def run(self, ctx: AgentContext) -> AgentOutput:
        ctx.params = dict(self.spec.params)
        return validate_output(self.name, self.fn(ctx))
