"""The checks of each step kind in a flow file (part of `FlowChecker`,
orchestrator/flowcheck.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gates.conflicts import follow_effects
from gates.options import BUILTIN_OPTIONS
from orchestrator import spec as S
from orchestrator.filelimits import hold_problem
from orchestrator.yamlfile import format_path


class StepChecks:
    """Per step kind: `step_<kind>(path, body)`, called for every step of the flow through
    `CHECKS` (below)."""

    def step_parallel(self, path: tuple, body: S.ParallelStep) -> None:
        for i, name in enumerate(body.agents):
            self.agent(path + ("agents", i) if len(body.agents) > 1 else path, name)

    def step_agent(self, path: tuple, body: S.AgentStep) -> None:
        self.agent(path + ("agent",), body.agent)

    def step_gate(self, path: tuple, body: S.GateStep) -> None:
        self.condition(path + ("when",), body.when)
        self.people(path + ("approvers",), body.approvers, deciding=True)
        self.chain(path + ("escalation",), body.escalation)
        option_ids = []
        for i, option in enumerate(body.options):
            option_id = option if isinstance(option, str) else option.id
            if isinstance(option, str) and option not in BUILTIN_OPTIONS:
                self.add(path + ("options", i),
                         f"unknown option {option!r}; built-in options are "
                         + ", ".join(BUILTIN_OPTIONS)
                         + "; declare others as {id: ..., label: ..., effect: approve|reject}")
            if option_id in option_ids:
                self.add(path + ("options", i), f"option {option_id!r} is listed twice")
            option_ids.append(option_id)
        if isinstance(body.reason_required, list):
            for i, name in enumerate(body.reason_required):
                if name not in option_ids:
                    self.add(path + ("reason_required", i),
                             f"{name!r} is not one of this gate's options: " + ", ".join(option_ids))
        effects = [BUILTIN_OPTIONS[o]["effect"] if isinstance(o, str) and o in BUILTIN_OPTIONS
                   else getattr(o, "effect", None) for o in body.options]
        if "request_changes" in effects and not body.back_to:
            self.add(path + ("back_to",), "request_changes needs back_to: the id of an "
                                          "earlier step to send the run back to")
        if "approve" not in effects:
            self.add(path + ("options",), "a gate needs at least one option with effect approve")
        for i, name in enumerate(body.editable):
            if name not in self.flow.inputs:
                self.add(path + ("editable", i),
                         f"{name!r} is not an input of this flow; inputs: "
                         + (", ".join(self.flow.inputs) or "none"))
        for i, name in enumerate(body.show or []):
            self.agent(path + ("show", i), name, runnable=False)

    def step_conflict(self, path: tuple, body: S.ConflictStep) -> None:
        for i, name in enumerate(body.among):
            self.agent(path + ("among", i), name, runnable=False)
        for i, name in enumerate(body.priority):
            if name not in body.among:
                self.add(path + ("priority", i), f"{name!r} is not among {body.among}")
        if body.on_disagreement == "follow_priority" and not body.priority:
            self.add(path + ("priority",), "follow_priority needs priority: [agent, ...]")
        if body.on_disagreement == "ask" and not body.deciders and not body.escalation:
            self.add(path + ("deciders",), "ask needs deciders (who chooses) or an escalation")
        if body.on_disagreement == "escalate":
            self.chain(path + ("escalation",), body.escalation, "on_disagreement: escalate")
        else:
            self.chain(path + ("escalation",), body.escalation)
        self.people(path + ("deciders",), body.deciders, deciding=True)

    def conflict_effects(self, path: tuple, body: S.ConflictStep, after: list[S.Step]) -> None:
        """Following a signal must do what the flow says, and something: a `gate` effect
        needs a gate later in the same list with no action before it, and a conflict whose
        every effect is `continue` must be read by a later condition (conflicts.ID)."""
        effects = follow_effects(body.then)
        gated = [v for v, e in effects.items() if e.kind == "gate"]
        words = {"none": "no signal at all"}
        if gated:
            said = [v for v in gated if v in body.then]
            how = (f"then: {{{', '.join(f'{v}: gate' for v in said)}}}" if said else
                   "the default")
            before = next((s for s in after if s.kind in ("gate", "action", "external", "route",
                                                            "plan")),
                          None)
            if before is None or before.kind != "gate":
                where = (f"a {before.kind} step ({before.body.id or before.kind}) comes first, "
                         "and could act before anyone approves" if before is not None
                         else "no gate follows this conflict in its list of steps")
                self.add(path + (("then",) if said else ()),
                         f"following {' or '.join(words.get(v, v) for v in gated)} opens the "
                         f"next gate ({how}), but "
                         f"{where}; add a gate right after it, or say what following "
                         f"{gated[0]} does instead: then: {{{gated[0]}: stop | continue | "
                         "path:BLOCK}")
        if all(e.kind == "continue" for e in effects.values()):
            read = body.id is not None and any(
                re.search(rf"\bconflicts\s*(\.\s*{re.escape(body.id)}\b|\[)", source)
                for source in self.conditions_read())
            if not read:
                self.add(path + ("then",),
                         "this conflict's result is never used: following any signal "
                         "continues and no condition reads conflicts."
                         + (body.id or "ID (give the conflict an id)")
                         + "; say what following a signal does (then: {block: stop, "
                           "warn: gate}) or read the result in a later gate or boundary")

    def step_boundary(self, path: tuple, body: S.BoundaryStep) -> None:
        self.condition(path + ("check",), body.check)
        if body.on_violation == "escalate":
            self.chain(path + ("escalation",), body.escalation, "on_violation: escalate")
        else:
            self.chain(path + ("escalation",), body.escalation)
        if body.on_violation == "gate" and not body.approvers:
            self.add(path + ("approvers",), "on_violation: gate needs approvers: who may pass it")
        self.people(path + ("approvers",), body.approvers, deciding=True)

    def step_action(self, path: tuple, body: S.ActionStep) -> None:
        self.call(path + ("call",), body.call)
        held = hold_problem("action", body.timeout, body.retry)
        if held:
            self.add(path + ("timeout",), held)
        self.chain(path + ("escalation",), body.escalation)
        self.people(path + ("approvers",), body.approvers, deciding=True)
        if body.retry.attempts > 1 and not body.idempotent:
            self.add(path + ("retry",), "only an idempotent action may be retried "
                                        "(set idempotent: true if running it twice is safe)")

    def step_external(self, path: tuple, body: S.ExternalStep) -> None:
        self.chain(path + ("escalation",), body.escalation)
        self.people(path + ("approvers",), body.approvers, deciding=True)
        seen: set[str] = set()
        for i, name in enumerate(body.arguments or []):
            where = path + ("arguments", i) if len(body.arguments or []) > 1 else path + ("arguments",)
            if name not in self.flow.inputs:
                self.add(where, f"{name!r} is not an input of this flow; the tool's arguments "
                                "are inputs: " + (", ".join(self.flow.inputs) or "none declared"))
            elif name in seen:
                self.add(where, f"{name!r} is listed twice")
            seen.add(name)
        if body.arguments is None and not self.flow.inputs:
            self.add(path, "an external action hands the caller its arguments, which are the "
                           "flow's inputs: declare them under inputs")

    def step_route(self, path: tuple, body: S.RouteStep) -> None:
        self.agent(path + ("agent",), body.agent)
        agent = self.flow.agents.get(body.agent)
        if isinstance(agent, S.RulesAgent):
            allowed = set(body.branches) | ({"done"} if body.repeat else set())
            for i, rule in enumerate([*agent.rules, agent.otherwise]):
                if rule.branch is not None and rule.branch not in allowed:
                    where = ("agents", body.agent) + (("rules", i) if i < len(agent.rules)
                                                      else ("otherwise",))
                    self.add(where + ("branch",),
                             f"branch {rule.branch!r} is not a branch of the route at "
                             f"{format_path(path)}: " + ", ".join(sorted(allowed)))

    def step_plan(self, path: tuple, body: S.PlanStep) -> None:
        self.agent(path + ("planner",), body.planner)
        self.agent(path + ("executor",), body.executor)


# The check of each step kind: a kind the spec knows and this table lacks fails at import.
CHECKS: dict[str, Callable[[StepChecks, tuple, Any], None]] = {
    "parallel": StepChecks.step_parallel,
    "agent": StepChecks.step_agent,
    "conflict": StepChecks.step_conflict,
    "gate": StepChecks.step_gate,
    "boundary": StepChecks.step_boundary,
    "action": StepChecks.step_action,
    "external": StepChecks.step_external,
    "route": StepChecks.step_route,
    "plan": StepChecks.step_plan,
}
if set(CHECKS) != set(S.STEP_KINDS):
    raise RuntimeError(f"step kinds without a check: {sorted(set(S.STEP_KINDS) ^ set(CHECKS))}")
