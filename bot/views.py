"""Reading what the Slack renderers show, from the database."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Session, col, select

from bot.render.gates import GateView
from gates.escalation import Chain
from orchestrator.gating import eligible
from storage.models import Decision, Gate, Run, TraceEntry


def gate_view(session: Session, gate: Gate, run: Run | None = None,
              decisions: list[Decision] | None = None) -> GateView:
    """What a gate's message shows. `run` and the gate's `decisions` (oldest first) are
    read unless given."""
    run = run or session.get(Run, gate.run_id)
    assert run is not None
    if decisions is None:
        decisions = list(session.exec(select(Decision).where(Decision.gate_id == gate.id)
                                      .order_by(col(Decision.id))))
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
        closed = session.exec(select(TraceEntry).where(
            TraceEntry.chain == run.ref, TraceEntry.kind == "gate_decided")
            .order_by(col(TraceEntry.seq).desc())).all()
        entry = next((e for e in closed if e.data.get("gate_id") == gate.id), None)
        if entry is not None:
            view.outcome_effect = entry.data.get("outcome")
            view.decided_by = list(entry.data.get("decided_by", []))
            view.why = entry.data.get("why", "")
            view.then = entry.data.get("then")  # a conflict: what following its signal does
    return view


def pending_gate_ids(session: Session, user: str) -> list[int]:
    """Open gates `user` may decide, oldest first. The database looks for `user` in each
    open gate's approvers (a JSON list): this runs for every approver of a gate on every
    event of that gate, and loading the lists into Python cost a JSON parse per open gate,
    hundreds per App Home at a busy company. A requester's own gate under four-eyes is not
    theirs to decide (gates opened by older versions still list them)."""
    own = sa.select(sa.literal(1)).select_from(Run).where(
        col(Run.id) == col(Gate.run_id), col(Run.requester) == user)
    rows = session.exec(select(Gate.id).where(Gate.status == "open",
                                              _among_approvers(session, user),
                                              sa.or_(sa.not_(col(Gate.forbid_requester)),
                                                     ~own.exists()))
                        .order_by(col(Gate.id)))
    return [gate_id for gate_id in rows if gate_id is not None]


def _among_approvers(session: Session, user: str) -> sa.ColumnElement[bool]:
    approvers = col(Gate.approvers)
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(approvers, JSONB).contains([user])
    each = sa.func.json_each(approvers).table_valued("value").alias("approver")
    return sa.exists(sa.select(sa.literal(1)).select_from(each).where(each.c.value == user))


def pending_gate_views(session: Session, user: str, limit: int) -> tuple[list[GateView], int]:
    """Views of the first `limit` gates waiting for `user`, and how many wait in all."""
    ids = pending_gate_ids(session, user)
    if not ids:
        return [], 0
    # Three queries for the lot, not two per gate: every approver's App Home is rendered
    # from this whenever one of their gates changes.
    gates = list(session.exec(select(Gate).where(col(Gate.id).in_(ids[:limit]))
                              .order_by(col(Gate.id))))
    runs = {run.id: run for run in session.exec(
        select(Run).where(col(Run.id).in_({g.run_id for g in gates})))}
    decided: dict[int, list[Decision]] = defaultdict(list)
    for decision in session.exec(select(Decision).where(
            col(Decision.gate_id).in_([g.id for g in gates])).order_by(col(Decision.id))):
        decided[decision.gate_id].append(decision)
    return [gate_view(session, g, runs[g.run_id], decided[g.id or 0]) for g in gates], len(ids)
