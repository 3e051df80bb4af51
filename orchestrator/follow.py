"""What following a signal does: a conflict's `then`, applied.

A conflict settles on one signal (agreement, the flow's policy, or a person's choice), or
on none when no agent gave one. The verdict followed picks the effect the flow states
(`then`, over the safe defaults in gates/conflicts.py): the run stops, the next gate opens
whatever its `when`, the run takes a path (a block), or it continues. The effect is
recorded with the conflict (`conflicts.ID.effect`) and traced, and the cards say it.
"""

from __future__ import annotations

from typing import Any

from gates.conflicts import follow_effects, followed
from orchestrator.program import Node
from orchestrator.runtime import Finish, Goto, Transition, Tx


def effect_words(record: dict[str, Any]) -> str:
    """What the run does next, in the words cards and messages use."""
    effect = record.get("effect", "continue")
    if effect == "stop":
        return "the run stops"
    if effect == "gate":
        return f"gate '{record.get('gate')}' must approve before the run goes on"
    if effect.startswith("path:"):
        return f"the run takes path '{effect.removeprefix('path:')}'"
    return "the run continues"


def what_was_followed(record: dict[str, Any]) -> str:
    if not record.get("winner"):
        return "no signal (nothing to compare)"
    return f"{record['winner']} ({record.get('verdict') or 'no verdict'})"


def apply_follow(tx: Tx, node: Node, record: dict[str, Any]) -> tuple[Transition, dict[str, Any]]:
    """Record the conflict's outcome (`record`: winner, verdict, ...) with the effect its
    verdict has; return where the run goes and the record as stored."""
    verdict = followed(record.get("verdict") or None) if record.get("winner") else "none"
    effect = follow_effects(node.spec.then)[verdict]
    record = {**record, "followed": verdict, "effect": str(effect)}
    required = {k: v for k, v in tx.run.context.get("required_gates", {}).items()
                if v.get("conflict") != node.label}  # this conflict's earlier say no longer holds
    if effect.kind == "gate":
        assert node.next_gate is not None  # the loader refuses a gate effect with no gate
        gate = tx.node(node.next_gate)
        record["gate"] = gate.label
        required[gate.key] = {"conflict": node.label, "winner": record.get("winner") or "",
                              "verdict": record.get("verdict") or "",
                              "by": record.get("chosen_by"), "reason": record.get("reason")}
    context = {**tx.run.context,
               "conflicts": {**tx.run.context.get("conflicts", {}), node.label: record}}
    if required or "required_gates" in context:
        context["required_gates"] = required
    tx.run.context = context
    if effect.kind == "stop":
        why = f"conflict '{node.label}': following {what_was_followed(record)} stops the run"
        if record.get("reason"):
            why += f": {record['reason']}"
        return Finish("rejected", "conflict", why), record
    if effect.kind == "path":
        return Goto(node.branches[verdict]), record
    return Goto(node.next), record
