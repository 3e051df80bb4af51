"""What people do to a waiting gate's escalation: claim it ("I'm on it"), snooze it, hand
it to someone else.

A claim or a snooze pauses pings and may move the chain's next step later, never earlier,
and never past the cap (`max_postpone`, gates/escalation.py): approvers claiming or snoozing
in turn cannot keep a chain from its final, fail-closed step. Each is traced with where it
left the next step.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gates import escalation as esc
from gates.durations import format_duration
from gates.options import Refusal
from orchestrator.gating import add_timer, cancel_timers, eligible, excluded, four_eyes_refusal
from orchestrator.runtime import Tx
from storage.models import Gate


def _may_pause(tx: Tx, gate: Gate, user: str, what: str) -> esc.Chain:
    if user in excluded(gate, tx.run.requester):
        raise Refusal(four_eyes_refusal(gate, tx.run.ref, user))
    if user not in gate.approvers:
        raise Refusal(f"only an approver of gate '{gate.key}' can {what} it")
    if not gate.chain:
        raise Refusal(f"gate '{gate.key}' has no escalation chain: there is nothing to {what}")
    if gate.next_deadline is None:
        raise Refusal(f"the escalation of gate '{gate.key}' has ended (held open, no more "
                      f"pings): there is nothing to {what}")
    return esc.Chain.from_dict(gate.chain)


def _postpone(tx: Tx, gate: Gate, chain: esc.Chain, wanted: datetime) -> esc.Postponement:
    assert gate.next_deadline is not None
    return esc.postpone(chain, gate.opened_at, gate.esc_level, gate.esc_cycle,
                        gate.next_deadline, wanted)


def _cap_note(chain: esc.Chain, move: esc.Postponement) -> str:
    return (f" (no later: claims and snoozes may push this gate's escalation at most "
            f"{format_duration(chain.max_postpone)} past its schedule, max_postpone)"
            if move.capped else "")


def claim(tx: Tx, gate: Gate, user: str) -> str:
    """"I'm on it": pings pause, and the chain moves on when the claim ends: at the claim
    timeout, or at the next step already due if that is later (a claim never brings the
    next step forward)."""
    chain = _may_pause(tx, gate, user, "claim")
    if gate.esc_state == "claimed" and gate.claimed_by == user:
        raise Refusal(f"you already claimed {tx.run.ref} until {gate.claim_until:%H:%M} UTC")
    move = _postpone(tx, gate, chain, tx.now + chain.claim_timeout)
    cancel_timers(tx, gate)
    gate.esc_state = "claimed"
    gate.claimed_by = user
    gate.claim_until = gate.next_deadline = move.deadline
    add_timer(tx, gate, "claim_expired", move.deadline, since=tx.now.isoformat())
    data = {"gate": gate.key, "gate_id": gate.id, "until": move.deadline.isoformat(),
            "deadline": move.deadline.isoformat(), "postponed_s": move.moved.total_seconds(),
            "latest": move.latest.isoformat()}
    if move.capped:
        data["capped"] = True
    tx.record("claimed", data, actor=user, node=gate.node, event="claimed")
    return (f"{tx.run.ref} is yours until {move.deadline:%H:%M} UTC{_cap_note(chain, move)}; "
            "pings are paused")


def snooze(tx: Tx, gate: Gate, user: str, wanted: timedelta) -> str:
    """No pings for `wanted`; the chain's next step moves to the end of the snooze if that is
    later (never earlier). A claim held stays held, by whoever holds it."""
    chain = _may_pause(tx, gate, user, "snooze")
    try:
        duration = esc.snooze_choice(chain, wanted)
    except ValueError as exc:
        raise Refusal(str(exc)) from None
    move = _postpone(tx, gate, chain, tx.now + duration)
    quiet_until = min(tx.now + duration, move.deadline)
    cancel_timers(tx, gate)
    gate.snoozed_until = quiet_until
    gate.next_deadline = move.deadline
    claimed = gate.esc_state == "claimed" and gate.claimed_by is not None
    if claimed:
        gate.claim_until = move.deadline
        add_timer(tx, gate, "claim_expired", move.deadline, since=tx.now.isoformat())
    else:
        gate.esc_state = "snoozed"
        add_timer(tx, gate, "escalate", move.deadline, snoozed=True)
        if quiet_until < move.deadline:
            add_timer(tx, gate, "snooze_ended", quiet_until)
    data = {"gate": gate.key, "gate_id": gate.id, "until": quiet_until.isoformat(),
            "for_s": duration.total_seconds(), "deadline": move.deadline.isoformat(),
            "postponed_s": move.moved.total_seconds(), "latest": move.latest.isoformat()}
    if claimed:
        data["claim_kept"] = gate.claimed_by
    if move.capped:
        data["capped"] = True
    tx.record("snoozed", data, actor=user, node=gate.node, event="snoozed")
    kept = (f"; {tx.org.display(gate.claimed_by)} still holds the claim"
            if claimed and gate.claimed_by else "")
    return (f"{tx.run.ref} snoozed until {quiet_until:%H:%M} UTC; next step at "
            f"{move.deadline:%H:%M} UTC{_cap_note(chain, move)}{kept}")


def reassign(tx: Tx, gate: Gate, user: str, to: str, *, is_admin: bool) -> str:
    if user not in eligible(gate, tx.run.requester) and not is_admin:
        raise Refusal(f"only an approver of gate '{gate.key}' or an admin can reassign it")
    if to in excluded(gate, tx.run.requester):
        if to == tx.run.requester:
            raise Refusal(f"{tx.org.display(to)} started {tx.run.ref} and cannot approve it")
        raise Refusal(f"{tx.org.display(to)} made the edit gate '{gate.key}' of {tx.run.ref} "
                      "is needed for, and cannot decide it")
    if to in gate.approvers:
        raise Refusal(f"{tx.org.display(to)} can already decide {tx.run.ref}")
    gate.approvers = sorted({*gate.approvers, to})
    tx.record("reassigned", {"gate": gate.key, "gate_id": gate.id, "to": to},
              actor=user, node=gate.node, event="reassigned")
    return f"{tx.org.display(to)} can now decide {tx.run.ref}"
