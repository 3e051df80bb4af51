"""The checks a schema-valid flow file gets beyond its schema: cross-references (agents,
roles, escalation chains, step ids), CEL conditions compiled and typed against sample
contexts, callables that exist, llm agents' roles and reach, triggers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gates.conditions import (
    FLOW_BUDGET,
    Condition,
    ConditionError,
    check_against,
    compile_condition,
)
from gates.org import Org, SpecError, is_service
from orchestrator import spec as S
from orchestrator.agents.answers import agent_uses
from orchestrator.agents.prompts import template_problems
from orchestrator.callables import CallableError, CallableLoader
from orchestrator.context import condition_shapes, sample_contexts
from orchestrator.errors import Problem
from orchestrator.filelimits import hold_problem
from orchestrator.reach import Reach, hook_secret_problem, own_secret
from orchestrator.stepcheck import CHECKS, StepChecks
from orchestrator.yamlfile import YamlDoc, format_path


class FlowChecker(StepChecks):
    """Cross-reference and CEL checks over a schema-valid flow (the checks of each step kind:
    orchestrator/stepcheck.py)."""

    def __init__(self, doc: YamlDoc, flow: S.Flow, org: Org | None,
                 callables: CallableLoader | None, reach: Reach | None = None) -> None:
        self.doc = doc
        self.flow = flow
        self.org = org
        self.callables = callables
        self.reach = reach
        self.problems: list[Problem] = []
        self.samples: list[dict[str, Any]] = []
        self.shapes: dict[str, Any] = {}
        self.conditions: dict[str, Condition] = {}  # by source, compiled once
        self.cost = 0  # the worst case of all the flow's conditions together

    def add(self, path: tuple, message: str) -> None:
        self.problems.append(self.doc.problem(path, message))

    def step_lists(self) -> Iterator[tuple[tuple, list[S.Step]]]:
        """Every list of steps in the file (the flow's, route branches', blocks') with its
        path: where a step's neighbours are."""
        def lists(items: list[S.Step], path: tuple) -> Iterator[tuple[tuple, list[S.Step]]]:
            yield path, items
            for i, step in enumerate(items):
                if step.kind == "route":
                    for branch, body in step.route.branches.items():
                        if isinstance(body, list):
                            yield from lists(body, path + (i, "route", "branches", branch))
        yield from lists(self.flow.steps, ("steps",))
        for name, body in self.flow.blocks.items():
            yield from lists(body, ("blocks", name))

    def conditions_read(self) -> list[str]:
        """The source of every CEL condition in the flow."""
        sources = [step.body.when for _, step in self.walk() if step.kind == "gate"]
        sources += [step.body.check for _, step in self.walk() if step.kind == "boundary"]
        for agent in self.flow.agents.values():
            if isinstance(agent, S.RulesAgent):
                sources += [rule.when for rule in agent.rules]
        return sources

    def walk(self) -> Iterator[tuple[tuple, S.Step]]:
        def steps(items: list[S.Step], path: tuple) -> Iterator[tuple[tuple, S.Step]]:
            for i, step in enumerate(items):
                yield path + (i, step.kind), step
                if step.kind == "route":
                    for branch, body in step.route.branches.items():
                        if isinstance(body, list):
                            yield from steps(body, path + (i, "route", "branches", branch))
        yield from steps(self.flow.steps, ("steps",))
        for name, body in self.flow.blocks.items():
            yield from steps(body, ("blocks", name))

    def agent(self, path: tuple, name: str, *, runnable: bool = True) -> None:
        if name not in self.flow.agents:
            known = ", ".join(self.flow.agents) or "none declared"
            self.add(path, f"unknown agent {name!r}; agents: {known}")
        elif runnable and self.flow.agents[name].kind == "external":
            self.add(path, f"agent {name!r} is external: its signal is submitted with "
                           "`baton signal`, it cannot be run by a step")

    def chain(self, path: tuple, name: str | None, needed_for: str | None = None) -> None:
        if name is None:
            if needed_for:
                self.add(path, f"{needed_for} needs an escalation chain (escalation: NAME)")
            return
        if name not in self.flow.escalations:
            known = ", ".join(self.flow.escalations) or "none declared"
            self.add(path, f"unknown escalation chain {name!r}; escalations: {known}")

    def people(self, path: tuple, specs: list[str] | None, *, channels: bool = False,
               deciding: bool = False) -> None:
        """Check that `specs` name people of the org file; `deciding`: people who decide,
        which a service (an agent) never is."""
        if self.org is None or not specs:
            return
        for i, spec in enumerate(specs):
            where = path + ((i,) if len(specs) > 1 else ())
            try:
                self.org.check_spec(spec, allow_channel=channels)
            except SpecError as exc:
                self.add(where, str(exc))
                continue
            services = sorted(p for p in self.org.resolve(spec) if is_service(p))
            if deciding and services:
                self.add(where, f"{spec!r} names {', '.join(services)}: only people decide, "
                                "a service (an agent) never does")

    def condition(self, path: tuple, source: str) -> Condition | None:
        try:
            condition = compile_condition(source, shapes=self.shapes)
        except ConditionError as exc:
            self.add(path, str(exc))
            return None
        self.cost += condition.cost
        if self.cost > FLOW_BUDGET:  # checked before evaluating it against the samples
            self.add(path, f"with this condition, the flow's conditions together may take "
                           f"{self.cost:,} steps to evaluate; a flow's may take at most "
                           f"{FLOW_BUDGET:,} (simplify them, or split the flow)")
            self.cost = -FLOW_BUDGET * 10  # said once
            return None
        try:
            check_against(condition, self.samples)
        except ConditionError as exc:
            self.add(path, str(exc))
            return None
        self.conditions[source] = condition
        return condition

    def call(self, path: tuple, dotted: str) -> None:
        if self.callables is None:
            return
        try:
            self.callables.load(dotted)
        except CallableError as exc:
            self.add(path, str(exc))

    def run(self) -> None:
        flow = self.flow
        labels: dict[str, list[str]] = {"gate": [], "conflict": []}
        signal_names = set(flow.agents)
        steps = conflicts = plans = 0
        for _, step in self.walk():
            steps += 1
            conflicts += step.kind == "conflict"
            if step.kind in labels and step.body.id:
                labels[step.kind].append(step.body.id)
            plans += step.kind == "plan"
            if step.kind == "plan" and step.plan.id:
                signal_names.add(step.plan.id)
        self.samples = sample_contexts(flow, labels["gate"], labels["conflict"], signal_names)
        # Plans signal under their step's name; gates are decided at steps, for failed agents
        # and for the loop guard's three limits.
        self.shapes = condition_shapes(flow, [*flow.agents, *(f"plan{i}" for i in range(plans))],
                                       steps + len(flow.agents) + 3, conflicts)

        for name, spec in flow.inputs.items():
            self.input(("inputs", name), spec)
        self.people(("requesters",), flow.requesters)
        for name, agent in flow.agents.items():
            path = ("agents", name)
            if isinstance(agent, S.PythonAgent | S.LlmAgent):
                held = hold_problem("agent", agent.timeout, agent.retry)
                if held:
                    self.add(path + ("timeout",), held)
            if agent.on_failure == "escalate":
                self.chain(path + ("escalation",), agent.escalation, "on_failure: escalate")
            elif agent.escalation:
                self.chain(path + ("escalation",), agent.escalation)
            if isinstance(agent, S.RulesAgent):
                for i, rule in enumerate(agent.rules):
                    self.condition(path + ("rules", i, "when"), rule.when)
            elif isinstance(agent, S.ExternalAgent):
                self.people(path + ("submitters",), agent.submitters)
            elif isinstance(agent, S.LlmAgent):
                if agent.input is not None:
                    for problem in template_problems(agent.input, flow.inputs, signal_names):
                        self.add(path + ("input",), problem)
            else:
                self.call(path + ("call",), agent.call)
        self.llm_roles()
        self.llm_reach()
        for name, chain in flow.escalations.items():
            for i, level in enumerate(chain.levels):
                self.people(("escalations", name, "levels", i, "notify"), level.notify,
                            channels=True, deciding=level.can_decide)
                if level.remind_before and level.remind_before >= level.wait:
                    self.add(("escalations", name, "levels", i, "remind_before"),
                             "remind_before must be shorter than wait")
        self.triggers()
        if flow.limits.on_violation == "escalate":
            self.chain(("limits", "escalation"), flow.limits.escalation, "on_violation: escalate")
        for path, step in self.walk():
            CHECKS[step.kind](self, path, step.body)
        for path, items in self.step_lists():
            for i, step in enumerate(items):
                if step.kind == "conflict":
                    self.conflict_effects(path + (i, "conflict"), step.conflict, items[i + 1:])

    def llm_roles(self) -> None:
        """An llm agent is asked for one kind of answer (a signal, a branch, subtasks): the
        same agent cannot be a router in one step and a planner or signal agent in another."""
        first: dict[str, tuple[tuple, str]] = {}
        for path, name, role in agent_uses(self.flow):
            if not isinstance(self.flow.agents.get(name), S.LlmAgent):
                continue
            seen = first.setdefault(name, (path, role.kind))
            if seen[1] != role.kind:
                self.add(path, f"llm agent {name!r} answers as a {seen[1]} at "
                               f"{format_path(seen[0])}, so it cannot be a {role.kind} here; "
                               "declare a second agent with its own instructions")

    def llm_reach(self) -> None:
        """Servers and key variables the operator allows (orchestrator/reach.py). Without
        the settings (a stored version), Baton's own secrets are still never a key."""
        sections: list[tuple[tuple, S.LlmDefaults | S.LlmAgent]] = [(("llm",), self.flow.llm)]
        sections += [(("agents", name), agent) for name, agent in self.flow.agents.items()
                     if isinstance(agent, S.LlmAgent)]
        for path, section in sections:
            if section.base_url is not None and self.reach is not None:
                problem = self.reach.host_problem(section.base_url)
                if problem:
                    self.add(path + ("base_url",), problem)
            name = section.api_key_env
            if name is not None and (self.reach is not None or own_secret(name)):
                problem = (self.reach or Reach()).key_problem(name)
                if problem:
                    self.add(path + ("api_key_env",), problem)

    def triggers(self) -> None:
        from orchestrator.errors import InputError
        from orchestrator.inputs import parse_inputs

        external = any(step.kind == "external" for _, step in self.walk())
        if external and (self.flow.triggers.schedule or self.flow.triggers.webhook):
            self.add(("triggers",), "a flow with an external step is started through the API "
                                    "by the agent that performs the action (docs/api.md), not "
                                    "by a schedule or a webhook")
        for i, schedule in enumerate(self.flow.triggers.schedule):
            path = ("triggers", "schedule", i)
            self.one_person(path + ("requester",), schedule.requester)
            try:
                parse_inputs(self.flow, schedule.inputs)
            except InputError as exc:
                self.add(path + ("inputs",), str(exc).splitlines()[0])
        hook = self.flow.triggers.webhook
        if hook is not None:
            self.one_person(("triggers", "webhook", "requester"), hook.requester)
            problem = hook_secret_problem(hook.secret_env)
            if problem:
                self.add(("triggers", "webhook", "secret_env"), problem)

    def one_person(self, path: tuple, spec: str) -> None:
        if self.org is None:
            return
        try:
            self.org.principal(spec)
        except SpecError:
            self.add(path, f"{spec!r}: a run is started by one person (user:NAME, NAME or a "
                           f"Slack user id); users in {self.org.source}: "
                           + (", ".join(sorted(self.org.data.users)) or "none"))

    def input(self, path: tuple, spec: S.InputSpec) -> None:
        from orchestrator.inputs import coerce  # local: inputs imports spec too

        for i, choice in enumerate(spec.choices or []):
            try:
                coerce(spec, choice, "choice")
            except ValueError as exc:
                self.add(path + ("choices", i), str(exc))
        if spec.default is not None:
            try:
                coerce(spec, spec.default, "default")
            except ValueError as exc:
                self.add(path + ("default",), str(exc))
