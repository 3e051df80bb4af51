"""The `conflict` step: compare agents' signals; follow the policy's winner or ask people."""

from __future__ import annotations

from typing import Any

import structlog

from gates.conflicts import (
    VERDICT_RANK,
    SignalView,
    follow_effects,
    followed,
    nothing_to_compare,
    resolve,
    severity_order,
)
from gates.options import Option
from orchestrator import gating
from orchestrator.follow import apply_follow, effect_words, four_eyes_at_stake
from orchestrator.gating import shown_to_decider
from orchestrator.program import Node
from orchestrator.runtime import Transition, Tx, Wait

log = structlog.get_logger("baton.steps")


def _settling(tx: Tx, node: Node, missing: list[str]) -> bool:
    """The settle window (like Alertmanager's group_wait): wait a little for signals that
    have not arrived, so late ones join this conflict instead of starting another."""
    spec = node.spec
    settles = dict(tx.run.context.get("settles", {}))
    if not spec.settle or not missing or node.key in settles:
        return False
    until = tx.now + spec.settle
    token = f"{node.key}#{tx.run.visits.get(node.key, 1)}"
    settles[node.key] = token
    tx.run.context = {**tx.run.context, "settles": settles}
    gating.add_timer(tx, None, "settle", until, token=token, node=node.key)
    tx.record("conflict_settling", {"conflict": node.label, "waiting_for": missing,
                                   "until": until.isoformat()}, node=node.key)
    return True


def step_conflict(tx: Tx, node: Node) -> Transition:
    spec = node.spec
    signals = tx.signals()
    if _settling(tx, node, [name for name in spec.among if name not in signals]):
        return Wait()
    if node.key in tx.run.context.get("settles", {}):
        settles = {k: v for k, v in tx.run.context["settles"].items() if k != node.key}
        tx.run.context = {**tx.run.context, "settles": settles}
    views = {name: (SignalView(name, signals[name].verdict, signals[name].severity,
                               signals[name].status == "failed") if name in signals else None)
             for name in spec.among}
    result = resolve(views, policy=spec.on_disagreement, priority=spec.priority,
                     compare=spec.compare)
    data: dict[str, Any] = {"conflict": node.label, "among": list(spec.among),
                            "verdicts": result.verdicts, "agreed": result.agreed,
                            "policy": spec.on_disagreement, "why": result.explanation}
    if result.abstained:
        data["abstained"] = list(result.abstained)
    if nothing_to_compare(views):
        # Not a disagreement: nobody is asked to choose between no signals. The run does
        # what the flow says following no signal does (then.none; by default as for warn).
        data.update(agreed=False, skipped=True,
                    why="nothing to compare: no agent gave a signal ("
                        + ", ".join(spec.among) + " failed or are missing)")
        transition, record = apply_follow(tx, node, {
            "agreed": False, "winner": "", "policy": spec.on_disagreement, "verdict": "",
            "severity": "", "skipped": True})
        data.update(followed="none", effect=record["effect"], then=effect_words(record))
        tx.record("conflict", data, node=node.key)
        return transition
    if result.winner is not None and not result.needs_human and not result.escalate:
        winner = signals[result.winner]
        transition, record = apply_follow(tx, node, {
            "agreed": result.agreed, "winner": result.winner, "policy": spec.on_disagreement,
            "verdict": winner.verdict or "", "severity": winner.severity or ""})
        data["winner"] = result.winner
        data["winning_signal"] = {"agent": result.winner, "verdict": winner.verdict,
                                  "severity": winner.severity}
        data.update(followed=record["followed"], effect=record["effect"],
                    then=effect_words(record))
        tx.record("conflict", data, node=node.key)
        return transition
    tx.record("conflict", data, node=node.key)
    chain = tx.program.chains.get(spec.escalation) if spec.escalation else None
    candidates = [n for n in spec.among if views[n] is not None and not views[n].abstains]
    ranked = sorted(candidates, key=lambda n: severity_order(views[n]), reverse=True)  # type: ignore[arg-type]
    options = [Option(f"follow_{n}", f"Follow {n} ({views[n].verdict})", "approve",  # type: ignore[union-attr]
                      "danger" if VERDICT_RANK.get(views[n].verdict or "ok", 0) == 2 else None,  # type: ignore[union-attr]
                      spec.reason_required) for n in ranked]
    if chain is not None:
        options.append(Option("escalate", "Escalate", "escalate"))
    if not options:
        options = [Option("reject", "Stop the run", "reject", "danger")]
    deciders = list(spec.deciders or [])
    gating.open_gate(
        tx, node, kind="conflict", key=node.label,
        title="Agents disagree: which signal should the run follow?",
        question=f"{result.explanation}. {choice_effects(tx, node, ranked, views)}",
        approver_specs=deciders, options=options, forbid_requester=four_eyes_at_stake(tx, node),
        # the signals as the card shows them: a choice follows what the person saw, even if
        # an agent sends another signal before they click
        policy={"policy": spec.on_disagreement, "among": list(spec.among),
                "choices": {n: {"verdict": views[n].verdict or "",  # type: ignore[union-attr]
                                "severity": views[n].severity or ""}  # type: ignore[union-attr]
                            for n in ranked}},
        shown=shown_to_decider(tx, list(spec.among)), chain=chain)
    return Wait()


def choice_effects(tx: Tx, node: Node, candidates: list[str],
                   views: dict[str, SignalView | None]) -> str:
    """What each choice on a conflict card does, so the person choosing knows."""
    said = []
    for verdict in dict.fromkeys(views[n].verdict for n in candidates if views[n] is not None):
        record = {"effect": str(follow_effects(node.spec.then)[followed(verdict)]),
                  "gate": tx.node(node.next_gate).label if node.next_gate else None}
        said.append(f"following {verdict} means {effect_words(record)}")
    text = "; ".join(said)
    return f"{text[:1].upper()}{text[1:]}." if text else ""
