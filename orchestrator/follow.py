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
from storage import gates
from storage.records import Gate


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


def four_eyes_at_stake(tx: Tx, node: Node) -> bool:
    """Whether the choice at conflict `node` decides if the run meets a gate under
    four-eyes (`forbid_requester`): the gate a `gate` effect opens, a gate in a `path:`
    block, or one whose `when` reads conflicts (or gates: the choice is the conflict gate's
    option). Then the run's requester does not choose:
    following an ok signal would let their own request past the gate they may not approve."""
    opens_next = any(e.kind == "gate" for e in follow_effects(node.spec.then).values())
    return any(
        gate.spec.forbid_requester for key, gate in tx.program.nodes.items()
        if gate.kind == "gate" and ((opens_next and key == node.next_gate)
                                    or key.startswith(f"{node.key}.")
                                    or {"conflicts", "gates"} & set(gate.conditions["when"].names)))


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


def follow_choice(tx: Tx, gate: Gate, node: Node, option: str,
                  data: dict[str, Any]) -> Transition:
    """A person chose `option` ("follow_X") at conflict gate `gate`: follow X's signal as
    its card showed it (an agent may have sent another since; the person chose the one
    they saw). Gates opened before cards kept what they showed read the latest signal.
    `data` is the gate_decided trace entry, completed here."""
    winner = option.removeprefix("follow_")
    signal = tx.signals().get(winner)
    seen = gate.policy.get("choices", {}).get(winner) or {
        "verdict": signal.verdict or "" if signal else "",
        "severity": signal.severity or "" if signal else ""}
    decision = gates.last_counted_decision(tx.w, gate.id)
    transition, record = apply_follow(tx, node, {
        "agreed": False, "winner": winner, "policy": gate.policy.get("policy", "ask"),
        "verdict": seen["verdict"], "severity": seen["severity"],
        "chosen_by": decision.decider if decision else None,
        "reason": decision.reason if decision else None})
    if signal is not None and (signal.verdict or "") != seen["verdict"]:
        data["signal_since"] = {"verdict": signal.verdict, "severity": signal.severity,
                                "note": "the agent sent another signal after the card was "
                                        "shown; the choice follows the one shown"}
    data["winner"] = winner
    data["winning_signal"] = {"agent": winner, "verdict": record["verdict"],
                              "severity": record["severity"]}
    data.update(followed=record["followed"], effect=record["effect"], then=effect_words(record))
    return transition


def gate_passed(tx: Tx, node: Node) -> None:
    """Gate `node` approved: what a conflict's choice asked of it is done (until then it
    opened on every visit, whatever its `when`: a request for changes does not lift it)."""
    required = tx.run.context.get("required_gates", {})
    if node.key in required:
        tx.run.context = {**tx.run.context, "required_gates": {
            k: v for k, v in required.items() if k != node.key}}
