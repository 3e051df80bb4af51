"""A validated flow compiled into nodes the engine steps through.

Steps nest (route branches, reusable blocks); the engine works on a flat map of nodes,
each knowing the node that follows it, so a run's position is one string (`Run.cursor`)
that survives a restart. Node keys are stable for a given flow version: a top-level step
is keyed by its id (or `kind-N`), a step inside a route branch by
`route.branch.id-or-index`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gates.conditions import Condition
from gates.conflicts import follow_effects
from gates.escalation import Chain, Level
from orchestrator.spec import EscalationSpec, Flow, Step


@dataclass
class Node:
    key: str
    kind: str
    spec: Any
    label: str
    next: str | None = None
    branches: dict[str, str | None] = field(default_factory=dict)  # route: branch -> entry
    back_to: str | None = None  # gate: where request_changes goes
    next_gate: str | None = None  # conflict: the gate a `gate` effect opens
    conditions: dict[str, Condition] = field(default_factory=dict)


@dataclass
class Program:
    flow: Flow
    nodes: dict[str, Node]
    start: str | None
    chains: dict[str, Chain]
    digest: str = ""
    source: str = ""
    agent_conditions: dict[str, list[Condition]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.flow.name

    def node(self, key: str) -> Node:
        return self.nodes[key]

    def gate_keys(self) -> list[str]:
        return [n.key for n in self.nodes.values() if n.kind == "gate"]


def chain_from_spec(name: str, spec: EscalationSpec) -> Chain:
    return Chain(
        name=name,
        levels=tuple(Level(tuple(lv.notify), lv.wait, lv.remind_before, lv.can_decide)
                     for lv in spec.levels),
        repeat=spec.repeat,
        final=spec.finally_,
        claim_timeout=spec.claim_timeout,
        snooze=tuple(spec.snooze),
        max_postpone=spec.max_postpone,
    )


class CompileError(Exception):
    def __init__(self, path: tuple, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def compile_flow(flow: Flow) -> Program:
    """Flatten the step tree. Raises CompileError for structural problems (duplicate
    ids, unknown or cyclic block references, a back_to that is not an earlier step)."""
    nodes: dict[str, Node] = {}

    def sequence(steps: list[Step], prefix: str, path: tuple, cont: str | None,
                 stack: tuple[str, ...]) -> str | None:
        """Compile `steps`; the last one continues to `cont`. Returns the entry key."""
        keys: list[str] = []
        labels: dict[str, str] = {}
        for index, step in enumerate(steps):
            label = step.body.id or f"{step.kind}-{index + 1}"
            if label in labels:
                raise CompileError(path + (index, step.kind, "id"),
                                   f"step id {label!r} is used twice in this list")
            key = f"{prefix}{label}"
            labels[label] = key
            keys.append(key)
        for index, step in enumerate(steps):
            key = keys[index]
            node = Node(key=key, kind=step.kind, spec=step.body, label=step.body.id or key,
                        next=keys[index + 1] if index + 1 < len(steps) else cont)
            nodes[key] = node
            step_path = path + (index, step.kind)
            if step.kind == "gate" and step.body.back_to:
                earlier = {lab: k for lab, k in labels.items() if keys.index(k) < index}
                if step.body.back_to not in earlier:
                    raise CompileError(step_path + ("back_to",),
                                       f"back_to {step.body.back_to!r} must name an earlier "
                                       "step in the same list; earlier steps: "
                                       + (", ".join(earlier) or "none"))
                node.back_to = earlier[step.body.back_to]
            if step.kind == "conflict":
                node.next_gate = next((keys[j] for j in range(index + 1, len(steps))
                                       if steps[j].kind == "gate"), None)
                entries: dict[str, str | None] = {}  # a path's block, compiled once
                for verdict, effect in follow_effects(step.body.then).items():
                    name = effect.path
                    if name is None:
                        continue
                    if name not in entries:
                        where = step_path + ("then", verdict)
                        if name not in flow.blocks:
                            raise CompileError(where, f"unknown block {name!r}; blocks: "
                                                      + (", ".join(flow.blocks) or "none"))
                        if name in stack:
                            cycle = " -> ".join((*stack, name))
                            raise CompileError(where, f"path cycle: {cycle} (a block cannot "
                                                      "lead back into itself)")
                        entries[name] = sequence(flow.blocks[name], f"{key}.{name}.",
                                                 ("blocks", name), node.next, (*stack, name))
                    node.branches[verdict] = entries[name]
            if step.kind == "route":
                after = key if step.body.repeat else node.next
                for branch, body in step.body.branches.items():
                    branch_path = step_path + ("branches", branch)
                    if isinstance(body, str):
                        if body not in flow.blocks:
                            raise CompileError(branch_path,
                                               f"unknown block {body!r}; blocks: "
                                               + (", ".join(flow.blocks) or "none"))
                        if body in stack:
                            cycle = " -> ".join((*stack, body))
                            raise CompileError(branch_path,
                                               f"route cycle: {cycle} (a block cannot "
                                               "route back into itself)")
                        node.branches[branch] = sequence(
                            flow.blocks[body], f"{key}.{branch}.", ("blocks", body), after,
                            (*stack, body))
                    else:
                        node.branches[branch] = sequence(
                            body, f"{key}.{branch}.", branch_path, after, stack)
        return keys[0] if keys else cont

    start = sequence(flow.steps, "", ("steps",), None, ())
    chains = {name: chain_from_spec(name, spec) for name, spec in flow.escalations.items()}
    return Program(flow=flow, nodes=nodes, start=start, chains=chains)
