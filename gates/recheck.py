"""Policy again, after an approver changed the run's values (edit-and-approve).

Boundaries and gate conditions were checked against the values the requester gave. An edit
changes them, so every policy that reads the inputs is asked again, against the values that
would take effect, before anything after the gate runs:

- a boundary the run has passed, or may still reach, whose check now fails:
  `on_violation: stop` refuses the edit outright (nothing changes); `escalate` or `gate`
  asks the people that boundary names, as it would have (one it is still to reach asks them
  when the run gets there);
- a boundary a person already allowed once, for exactly these values, stays allowed;
- a boundary still ahead whose check cannot be evaluated yet (it reads a signal the run has
  not produced) is checked, as always, when the run reaches it; one already passed that now
  cannot be evaluated is violated (boundaries fail closed);
- a gate the run skipped because its `when` was false, and that now holds, must be passed
  like any other gate; so must a gate people approved for other values of the inputs its
  `when` reads (the CFO approved 25,000; an edit to 49,000 is not theirs).

Pure: the engine gives the rules, the values and the overrides, and acts on the answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gates.boundaries import BoundaryCheck, check_boundary, lookup
from gates.conditions import Condition, ConditionError

Status = Literal["passed", "violated", "allowed", "deferred"]


@dataclass(frozen=True)
class BoundaryRule:
    key: str  # the boundary's step (node key)
    label: str  # its id, as people and traces name it
    condition: Condition
    on_violation: str  # stop | escalate | gate
    message: str = ""
    passed_before: bool = True  # the run has passed it (else it is still ahead)


@dataclass(frozen=True)
class Override:
    """A person allowed a boundary once, for the values they were shown."""

    boundary: str
    inputs: Mapping[str, Any]
    values: Mapping[str, Any]


@dataclass(frozen=True)
class BoundaryResult:
    rule: BoundaryRule
    check: BoundaryCheck
    status: Status

    @property
    def stops(self) -> bool:
        return self.status == "violated" and self.rule.on_violation == "stop"

    @property
    def asks_now(self) -> bool:
        """A violation of a boundary the run has passed, that people may allow: they are
        asked before the run goes on (one still ahead asks them when the run reaches it)."""
        return (self.status == "violated" and self.rule.on_violation != "stop"
                and self.rule.passed_before)

    def as_trace(self) -> dict[str, Any]:
        data = self.check.as_dict()
        data.update(on_violation=self.rule.on_violation, result=self.status)
        if self.status == "violated" and not self.rule.passed_before and not self.stops:
            data["note"] = "still ahead: escalates when the run reaches it"
        if self.status == "deferred":
            data["note"] = "cannot be evaluated yet: checked when the run reaches it"
        if self.status == "allowed":
            data["note"] = "allowed once already, for these same values"
        return data


@dataclass(frozen=True)
class GateRule:
    key: str  # the gate's step: skipped, or approved for `approved_for`
    label: str
    condition: Condition
    approved_for: Mapping[str, Any] | None = None  # the inputs people approved it with


# `inputs` read other than as `inputs.NAME` (`inputs['x']`, `'x' in inputs`, a macro over it)
_INPUTS_AS_A_WHOLE = re.compile(r"\binputs\b(?!\s*\.\s*[A-Za-z_])")


def recheck_boundaries(rules: Sequence[BoundaryRule], context: Mapping[str, Any],
                       overrides: Iterable[Override] = ()) -> list[BoundaryResult]:
    """Each rule's check against `context` (whose `inputs` are the values to take effect)."""
    overrides = list(overrides)
    inputs = dict(context.get("inputs", {}))
    results = []
    for rule in rules:
        check = check_boundary(rule.label, rule.condition, context, rule.message)
        status: Status
        if check.passed:
            status = "passed"
        elif check.error is not None and not rule.passed_before:
            status = "deferred"
        elif any(o.boundary == rule.key and dict(o.inputs) == inputs
                 and dict(o.values) == check.values for o in overrides):
            status = "allowed"
        else:
            status = "violated"
        results.append(BoundaryResult(rule, check, status))
    return results


def gate_now_required(rule: GateRule, context: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Whether a gate that was skipped must open for these values: its `when` holds, or can
    no longer be evaluated (gates fail closed). Returns the values it read too."""
    values = {path: lookup(context, path) for path in rule.condition.references()}
    try:
        return rule.condition.is_true(context), values
    except ConditionError:
        return True, values


def approval_stands(rule: GateRule, inputs: Mapping[str, Any]) -> bool:
    """An approval covers `inputs` when every input the gate's `when` reads is as it was
    approved (all of them, when `when` reads `inputs` as a whole)."""
    if rule.approved_for is None:
        return False
    names: set[str] | None = {path.split(".")[1] for path in rule.condition.references()
                              if path.startswith("inputs.")}
    if _INPUTS_AS_A_WHOLE.search(rule.condition.source):
        names = None
    return all(inputs.get(name) == rule.approved_for.get(name)
               for name in (names if names is not None else {*inputs, *rule.approved_for}))


def reads_inputs(condition: Condition) -> bool:
    """Only a condition that reads `inputs` can change when an approver edits them."""
    return "inputs" in condition.names
