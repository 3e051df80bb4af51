"""Loading and strictly validating flow files and the org file.

Every problem is reported with the file, the line, the path inside the file and what
was expected, and all problems of a file are reported at once.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError

from gates.conditions import (
    FLOW_BUDGET,
    Condition,
    ConditionError,
    check_against,
    compile_condition,
)
from gates.conflicts import follow_effects
from gates.options import BUILTIN_OPTIONS
from gates.org import Org, OrgFile, SpecError, is_service
from orchestrator import spec as S
from orchestrator.agents.answers import agent_uses
from orchestrator.agents.prompts import template_problems
from orchestrator.callables import CallableError, CallableLoader
from orchestrator.context import condition_shapes, sample_contexts
from orchestrator.errors import FlowError, NotFound, Problem
from orchestrator.filelimits import hold_problem, size_problems
from orchestrator.program import CompileError, Program, compile_flow
from orchestrator.reach import Reach, hook_secret_problem, own_secret
from orchestrator.yamlfile import YamlDoc, format_path, parse_yaml, read_yaml
from storage.trace import canonical_json

ORG_FILE_NAME = "org.yaml"
log = structlog.get_logger("baton.flows")


def _vocabulary(*models: type[BaseModel]) -> set[str]:
    words: set[str] = set()
    for model in models:
        for name, info in model.model_fields.items():
            words.add(info.alias or name)
    return words


_ALL_KEYS = _vocabulary(
    S.InputSpec, S.RetrySpec, S.Subtask, S.Rule, S.RulesAgent, S.PythonAgent, S.ExternalAgent,
    S.LlmAgent, S.LlmDefaults, S.ParallelStep,
    S.OptionSpec, S.GateStep, S.ConflictStep, S.BoundaryStep, S.ActionStep, S.ExternalStep,
    S.AgentStep,
    S.RouteStep, S.PlanStep, S.Step, S.LevelSpec, S.EscalationSpec, S.LimitsSpec, S.Flow,
    S.ScheduleTrigger, S.WebhookTrigger, S.Triggers,
) | {"kind"}


def _data_path(data: Any, loc: tuple) -> tuple:
    """Pydantic locations include union tags (`rules`, `function-after`); keep only the
    parts that exist in the data, so the path and line point into the file."""
    path: list[Any] = []
    current = data
    for part in loc:
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and part < len(current)
        if in_dict or in_list:
            path.append(part)
            current = current[part]
        elif isinstance(current, dict) and isinstance(part, str) and part == loc[-1]:
            path.append(part)  # a missing or unknown key: keep it so the message names it
            current = None
    return tuple(path)


def _message(error: dict[str, Any], vocabulary: set[str]) -> str:
    kind = error["type"]
    key = error["loc"][-1] if error["loc"] else ""
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(key), sorted(vocabulary), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}"
    if kind == "missing":
        return f"{key!r} is required"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if "input" in error and kind not in ("value_error",) and not isinstance(
            error["input"], dict | list):
        message += f" (got {error['input']!r})"
    return message


def validation_problems(doc: YamlDoc, exc: ValidationError,
                        vocabulary: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple] = set()
    for error in exc.errors():
        path = _data_path(doc.data, tuple(error["loc"]))
        message = _message(error, vocabulary)
        if (path, message) in seen:
            continue
        seen.add((path, message))
        problems.append(doc.problem(path, message))
    return problems


# -- org ------------------------------------------------------------------------------
def load_org(path: Path) -> Org:
    """Load the org file; a missing file gives an empty org (anyone can start runs, only
    Slack user ids can be named)."""
    if not path.exists():
        return Org.empty()
    doc = read_yaml(path, max_bytes=None, max_values=None)
    if doc.data is None:
        return Org(OrgFile(), source=str(path))
    if not isinstance(doc.data, dict):
        raise FlowError([doc.problem((), "expected a mapping with users, roles, admins")])
    try:
        data = OrgFile.model_validate(doc.data)
    except ValidationError as exc:
        raise FlowError(validation_problems(doc, exc, _vocabulary(OrgFile))) from None
    org = Org(data, source=str(path))
    problems = []
    for role, members in data.roles.items():
        for i, member in enumerate(members):
            if member.startswith("role:"):
                problems.append(doc.problem(("roles", role, i),
                                            "roles list people or group:NAME, not other roles"))
                continue
            try:
                org.check_spec(member)
            except SpecError as exc:
                problems.append(doc.problem(("roles", role, i), str(exc)))
    for name, group in data.groups.items():
        for i, member in enumerate(group.members):
            try:
                org.principal(member)
            except SpecError as exc:
                problems.append(doc.problem(("groups", name, "members", i), str(exc)))
    for i, admin in enumerate(data.admins):
        try:
            org.check_spec(admin)
            if any(is_service(p) for p in org.resolve(admin)):
                problems.append(doc.problem(("admins", i), "a service cannot be an admin: "
                                                          "admins are people"))
        except SpecError as exc:
            problems.append(doc.problem(("admins", i), str(exc)))
    for name, service in data.services.items():
        if service.owner is not None:
            try:
                if is_service(org.principal(service.owner)):
                    raise SpecError("a service's owner is a person")
            except SpecError as exc:
                problems.append(doc.problem(("services", name, "owner"), str(exc)))
    for login, owners in org.login_owners().items():
        for owner in owners[1:]:
            problems.append(doc.problem(("users", owner, "logins", data.users[owner].logins.index(login)),
                                        f"login {login!r} is already {owners[0]}'s: a login acts as "
                                        "one person"))
    if problems:
        raise FlowError(problems)
    return org


# -- flows ----------------------------------------------------------------------------
def flow_digest(flow: S.Flow) -> str:
    return hashlib.sha256(canonical_json(definition(flow)).encode()).hexdigest()


def definition(flow: S.Flow) -> dict[str, Any]:
    return flow.model_dump(mode="json", by_alias=True, exclude_defaults=True)


class _Checker:
    """Cross-reference and CEL checks over a schema-valid flow."""

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
            getattr(self, f"step_{step.kind}")(path, step.body)
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


def compile_document(doc: YamlDoc, org: Org | None = None,
                     callables: CallableLoader | None = None, reach: Reach | None = None) -> Program:
    """Validate a parsed flow file and compile it. Raises FlowError with every problem.
    People, modules and what the flow may reach are checked when given."""
    if not isinstance(doc.data, dict):
        raise FlowError([doc.problem((), "expected a mapping with name, inputs, agents, steps")])
    too_big = size_problems(doc)
    if too_big:
        raise FlowError(too_big)
    try:
        flow = S.Flow.model_validate(doc.data)
    except ValidationError as exc:
        raise FlowError(validation_problems(doc, exc, _ALL_KEYS)) from None
    except OverflowError as exc:  # a duration past timedelta's range (`timeout: 1e20d`, `.inf`)
        raise FlowError([doc.problem((), f"a duration or number is too large: {exc}")]) from None
    checker = _Checker(doc, flow, org, callables, reach)
    checker.run()
    try:
        program = compile_flow(flow)
    except CompileError as exc:
        checker.add(exc.path, exc.message)
        program = None
    if checker.problems:
        raise FlowError(checker.problems)
    assert program is not None
    program.digest = flow_digest(flow)
    program.source = doc.source
    _compile_conditions(program, checker.conditions)
    return program


def _compile_conditions(program: Program, compiled: dict[str, Condition]) -> None:
    """Attach the checker's compiled CEL to nodes (every condition was checked)."""
    for node in program.nodes.values():
        if node.kind == "gate":
            node.conditions["when"] = compiled[node.spec.when]
        elif node.kind == "boundary":
            node.conditions["check"] = compiled[node.spec.check]
    for name, agent in program.flow.agents.items():
        if isinstance(agent, S.RulesAgent):
            program.agent_conditions[name] = [compiled[r.when] for r in agent.rules]


def load_flow(path: Path, org: Org | None = None, callables: CallableLoader | None = None,
              source: str | None = None, reach: Reach | None = None) -> Program:
    return compile_document(read_yaml(path, source), org, callables, reach)


def program_from_definition(data: dict[str, Any], source: str = "(stored flow)") -> Program:
    """Rebuild a stored flow version. People, modules and what it may reach are checked when
    they are used (an llm agent checks its server and key before every call). Its size was
    checked when its file was loaded: as JSON, with shorthands spelt out, it may be larger
    than the file was, and it must still rebuild."""
    return compile_document(parse_yaml(canonical_json(data), source, max_bytes=None,
                                       max_values=None))


class FlowCatalog:
    """The flows of a folder, reloaded when a file changes."""

    def __init__(self, folder: Path, org: Org, callables: CallableLoader,
                 reach: Reach | None = None) -> None:
        self.folder = folder
        self.org = org
        self.callables = callables
        self.reach = reach or Reach()
        self._cache: dict[Path, tuple[float, Program | FlowError]] = {}

    def files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir()
                      if p.suffix in (".yaml", ".yml") and p.name != ORG_FILE_NAME)

    def _load(self, path: Path) -> Program | FlowError:
        mtime = path.stat().st_mtime
        cached = self._cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        try:
            result: Program | FlowError = load_flow(path, self.org, self.callables,
                                                    reach=self.reach)
        except FlowError as exc:
            result = exc
        except Exception as exc:  # a bug in one file's checks must not take every flow down
            log.exception("flow_check_crashed", file=str(path))
            result = FlowError([Problem(str(path), "", f"Baton could not check this file "
                                                       f"({type(exc).__name__}), so it is not "
                                                       "loaded; please report it")])
        self._cache[path] = (mtime, result)
        return result

    def load_all(self) -> tuple[dict[str, Program], list[FlowError]]:
        flows: dict[str, Program] = {}
        errors: list[FlowError] = []
        for path in self.files():
            result = self._load(path)
            if isinstance(result, FlowError):
                errors.append(result)
            elif result.name in flows:
                errors.append(FlowError([Problem(str(path), "name",
                                                 f"flow {result.name!r} is also defined in "
                                                 f"{flows[result.name].source}")]))
            else:
                flows[result.name] = result
        return flows, errors

    def get(self, name: str) -> Program:
        flows, errors = self.load_all()
        if name in flows:
            return flows[name]
        for error in errors:
            if any(Path(p.file).stem == name for p in error.problems):
                raise error
        known = ", ".join(sorted(flows)) or "none"
        close = difflib.get_close_matches(name, list(flows), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise NotFound(f"unknown flow {name!r}.{hint} Flows in {self.folder}: {known}")
