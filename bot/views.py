"""Reading what the Slack renderers show, from the database."""

from __future__ import annotations

from typing import Any

from bot.render.gates import GateView
from bot.render.home import SHOWN_GATES, SHOWN_RUNS
from gates.escalation import Chain
from orchestrator.gating import eligible
from storage import reads
from storage.runs import read_run


def gate_view(conn: Any, gate: Any, run: Any | None = None,
              decisions: list[Any] | None = None) -> GateView:
    """What a gate's message shows (`gate`, `run` and `decisions` are records, or rows with
    the same fields). `run` and the gate's `decisions` (oldest first) are read, with `conn`,
    unless given."""
    run = run or read_run(conn, gate.run_id)
    assert run is not None
    if decisions is None:
        decisions = reads.decisions_of_gate(conn, gate.id)
    counted = [d for d in decisions if d.counted]
    chain = Chain.from_dict(gate.chain) if gate.chain else None
    view = GateView(
        id=gate.id or 0, key=gate.key, kind=gate.kind, run=run.ref, requester=run.requester,
        title=gate.title, question=gate.question, options=list(gate.options),
        approvers=sorted(eligible(gate, run.requester)), quorum=gate.quorum, status=gate.status,
        shown=dict(gate.shown), editable=list(gate.editable),
        approvals=[d.decider for d in counted if d.effect == "approve"],
        decisions=[{"by": d.decider, "option": d.option, "effect": d.effect, "reason": d.reason,
                    "edits": d.edits, "at": d.created_at} for d in counted],
        deadline=gate.next_deadline, level=gate.esc_level,
        levels=len(chain.levels) if chain else 0, chain=chain.name if chain else None,
        esc_state=gate.esc_state, claimed_by=gate.claimed_by, claim_until=gate.claim_until,
        snoozed_until=gate.snoozed_until,
        snooze=[s.total_seconds() for s in chain.snooze] if chain else [],
        version=gate.version, decided_at=gate.decided_at, outcome_option=gate.outcome,
    )
    if gate.status == "decided":
        entry = reads.gate_decided_entry(conn, run.ref, gate.id)
        if entry is not None:
            view.outcome_effect = entry.get("outcome")
            view.decided_by = list(entry.get("decided_by", []))
            view.why = entry.get("why", "")
            view.then = entry.get("then")  # a conflict: what following its signal does
    return view


pending_gate_ids = reads.pending_gate_ids


def home(conn: Any, user: str) -> reads.Home:
    """What `user`'s App Home shows (`bot.render.home.home_view`): the first SHOWN_GATES
    gates waiting for them, how many wait in all, and the newest SHOWN_RUNS runs they
    started."""
    return reads.home(conn, user, gates=SHOWN_GATES, runs=SHOWN_RUNS)
