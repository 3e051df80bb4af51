"""Events an older Baton queued (before events pointed at their trace entry: a payload of
their own, no `seq`) still reach Slack after the upgrade, saying what they said."""

from __future__ import annotations

from sqlmodel import col, select

from storage import rows
from storage.models import Event
from tests.bot.conftest import ALICE, PAYMENTS, Baton
from tests.conftest import TEST_FLOWS


def test_events_an_older_baton_queued_reach_slack_as_they_did(make_baton) -> None:  # type: ignore[no-untyped-def]
    baton: Baton = make_baton(TEST_FLOWS)
    baton.driver.slash_command("run escalating", user=ALICE, channel=PAYMENTS)
    baton.settle()
    card = baton.run_card()
    # a claim as this version records it: an event pointing at the `claimed` entry
    baton.engine.claim("R-1", "bob")
    baton.settle()
    recorded = baton.thread(card)[-1]
    run = baton.engine.get_run("R-1")
    (gate,) = baton.engine.open_gates(run.id)
    assert gate.claim_until is not None
    until = gate.claim_until.isoformat()

    # the same claim and more, as Baton 0010 queued them (orchestrator.events.emit's payloads)
    ref, at = run.ref, baton.engine.clock.now()
    written = [
        (run.id, "claimed", {"run": ref, "gate_id": gate.id, "gate": "approve", "by": "bob",
                             "until": until, "deadline": until}),
        (run.id, "boundary_violated", {"run": ref, "boundary": "amount-limit", "check": "x <= 1",
                                       "values": {"x": 2}, "on_violation": "escalate",
                                       "message": "Payments above 50,000 need the CFO"}),
        (run.id, "action_reported", {"run": ref, "action": "pay", "tool": "pay_vendor",
                                     "reported_by": "bob", "succeeded": False, "error": "boom"}),
        (None, "halted", {"run": None, "by": "erin", "reason": "incident"}),
    ]
    with baton.engine.db.write() as s:
        for run_id, kind, payload in written:
            rows.add(s, Event, {"run_id": run_id, "kind": kind, "payload": payload, "created_at": at})
    baton.settle()
    with baton.engine.db.read() as s:
        assert s.exec(select(Event.id).where(col(Event.delivered_at).is_(None))).all() == []

    claimed, boundary, reported = baton.thread(card)[-3:]
    assert (claimed.text, claimed.blocks) == (recorded.text, recorded.blocks)
    assert boundary.text.startswith(":no_entry: Boundary `amount-limit` violated → escalate")
    assert "Payments above 50,000 need the CFO" in str(boundary.blocks)
    assert reported.text.startswith(":warning: <@U0BOB0001> reports a failure of `pay_vendor`")
    assert "boom" in str(reported.blocks)
    halted = baton.channel(PAYMENTS)[-1]
    assert halted.text.startswith(":octagonal_sign: *Baton halted* by <@U0ERIN001>: no new runs")
    assert "incident" in str(halted.blocks)
