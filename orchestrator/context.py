"""The values conditions and agents see (documented in gates/conditions.py).

Built the same way for a real run and for the sample run the loader checks conditions
against, so a condition that passes the load-time check sees the same shape at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from gates.cel_cost import SCALAR, Shape, collection, join, text
from gates.conflicts import SEVERITY_RANK
from orchestrator.spec import MAX_NAME, Flow, InputSpec
from storage.models import Gate, Run, Signal

# A condition's cost is bounded from the most the values it reads can hold (gates/cel_cost.py),
# so the lists a run accumulates are bounded where conditions see them: the latest LIST_ITEMS
# comments and deciders, each text at most TEXT characters (an agent's rationale's limit).
LIST_ITEMS = 100
TEXT = 20_000


def signal_view(signal: Signal) -> dict[str, Any]:
    return {
        "verdict": signal.verdict or "",
        "severity": signal.severity or "info",
        "severity_level": SEVERITY_RANK.get(signal.severity or "info", 0),
        "confidence": float(signal.confidence if signal.confidence is not None else 0.0),
        "summary": signal.summary,
        "rationale": signal.rationale,
        "failed": signal.status == "failed",
        "branch": str(signal.output.get("branch") or ""),
    }


def gate_view(gate: Gate, deciders: list[str], reason: str | None) -> dict[str, Any]:
    return {"outcome": gate.outcome or "", "option": gate.outcome or "",
            "decided_by": deciders[-LIST_ITEMS:], "reason": (reason or "")[:TEXT]}


def run_view(run: Run, now: datetime) -> dict[str, Any]:
    return {
        "id": run.ref,
        "flow": run.flow_name,
        "requester": run.requester,
        "steps": run.steps_taken,
        "tokens": run.tokens_used,
        "started_at": run.created_at,
        "comments": [str(c.get("text", ""))[:TEXT]
                     for c in run.context.get("comments", [])[-LIST_ITEMS:]],
    }


def build(run: Run, signals: Mapping[str, Signal], gates: Mapping[str, dict[str, Any]],
          now: datetime) -> dict[str, Any]:
    return {
        "inputs": dict(run.inputs),
        "signals": {name: signal_view(s) for name, s in signals.items()},
        "run": run_view(run, now),
        "gates": dict(gates),
        "conflicts": dict(run.context.get("conflicts", {})),
        "now": now,
    }


def condition_shapes(flow: Flow, signal_names: Iterable[str], gate_keys: int,
                     conflict_ids: int) -> dict[str, Shape]:
    """The most each name a condition reads can hold in a run of `flow`, as `build` makes
    it: one entry per declared input, per agent (or plan) that can signal, per gate that can
    be decided (`gate_keys`: an upper count), per conflict step."""
    longest = max([40] + [spec.max_length for spec in flow.inputs.values()]
                  + [len(str(v)) for spec in flow.inputs.values()
                     for v in [*(spec.choices or []), spec.default] if v is not None])
    name = text(MAX_NAME)
    signal = collection(len(SAMPLE_SIGNAL), text(TEXT), key=name)
    deciders = collection(LIST_ITEMS, text(200))
    return {
        "inputs": collection(len(flow.inputs), text(longest), key=name),
        "signals": collection(len(set(signal_names)), signal, key=name),
        "run": collection(7, join(text(TEXT), collection(LIST_ITEMS, text(TEXT))), key=name),
        "gates": collection(gate_keys, collection(4, join(text(TEXT), deciders), key=name),
                            key=name),
        "conflicts": collection(conflict_ids, collection(5, name, key=name), key=name),
        "now": SCALAR,
    }


# -- samples for load-time checks ------------------------------------------------------
def sample_value(spec: InputSpec) -> Any:
    if spec.default is not None:
        return spec.default
    if spec.choices:
        return spec.choices[0]
    return {"string": "sample", "number": 1.0, "integer": 1, "boolean": True}[spec.type]


SAMPLE_SIGNAL = {"verdict": "ok", "severity": "info", "severity_level": 0, "confidence": 1.0,
                 "summary": "", "rationale": "", "failed": False, "branch": ""}


def sample_contexts(flow: Flow, gate_labels: Iterable[str], conflict_labels: Iterable[str],
                    signal_names: Iterable[str]) -> list[dict[str, Any]]:
    """Two samples: every input given, and only the required or defaulted ones, so an
    unguarded read of an optional input is caught."""
    now = datetime(2030, 1, 1, tzinfo=UTC)
    full = {name: sample_value(spec) for name, spec in flow.inputs.items()}
    minimal = {name: value for name, value in full.items()
               if flow.inputs[name].required or flow.inputs[name].default is not None}
    base = {
        "signals": {name: dict(SAMPLE_SIGNAL) for name in signal_names},
        "run": {"id": "R-1", "flow": flow.name, "requester": "sample", "steps": 1,
                "tokens": 0, "started_at": now, "comments": []},
        "gates": {g: {"outcome": "approve", "option": "approve", "decided_by": ["sample"],
                      "reason": ""} for g in gate_labels},
        "conflicts": {c: {"agreed": True, "winner": "", "verdict": "ok", "severity": "info",
                          "policy": "ask", "followed": "ok", "effect": "continue"}
                      for c in conflict_labels},
        "now": now,
    }
    return [{**base, "inputs": full}, {**base, "inputs": minimal}]
