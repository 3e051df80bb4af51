"""`kind: rules`: deterministic, offline agents. The first rule whose CEL `when` holds
gives the signal; `otherwise` applies when none does."""

from __future__ import annotations

from gates.conditions import Condition, ConditionError
from orchestrator.agents.base import AgentContext, AgentOutput, PermanentAgentFailure
from orchestrator.spec import Rule, RulesAgent


class RulesAgentRunner:
    kind = "rules"
    inline = True

    def __init__(self, name: str, spec: RulesAgent, conditions: list[Condition]) -> None:
        self.name = name
        self.spec = spec
        self.conditions = conditions

    def run(self, ctx: AgentContext) -> AgentOutput:
        for rule, condition in zip(self.spec.rules, self.conditions, strict=True):
            try:
                if condition.is_true(ctx.conditions):
                    return _output(rule, matched=condition.source)
            except ConditionError as exc:
                raise PermanentAgentFailure(str(exc)) from None
        return _output(self.spec.otherwise, matched=None)


def _output(rule: Rule, matched: str | None) -> AgentOutput:
    rationale = rule.rationale or (f"Rule matched: {matched}" if matched else "")
    return AgentOutput(
        verdict=rule.verdict, severity=rule.severity, confidence=rule.confidence,
        summary=rule.summary, rationale=rationale, evidence=list(rule.evidence),
        branch=rule.branch, why=rule.why or (rationale if rule.branch else None),
        subtasks=[s.model_dump() for s in rule.subtasks] if rule.subtasks is not None else None,
    )
