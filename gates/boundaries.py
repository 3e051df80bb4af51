"""Boundaries: deterministic limits checked before a step.

A boundary passes only when its CEL check gives `true`. A check that cannot be evaluated
(a missing signal, a type error) counts as a violation: boundaries fail closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gates.conditions import Condition, ConditionError


@dataclass(frozen=True)
class BoundaryCheck:
    id: str
    check: str
    passed: bool
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"boundary": self.id, "check": self.check,
                                "passed": self.passed, "values": self.values}
        if self.error:
            data["error"] = self.error
        if self.message and not self.passed:
            data["message"] = self.message
        return data


def lookup(context: Mapping[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def check_boundary(boundary_id: str, condition: Condition, context: Mapping[str, Any],
                   message: str = "") -> BoundaryCheck:
    values = {path: lookup(context, path) for path in condition.references()}
    try:
        passed = condition.is_true(context)
        error = None
    except ConditionError as exc:
        passed, error = False, str(exc)
    return BoundaryCheck(boundary_id, condition.source, passed, values, error, message)
