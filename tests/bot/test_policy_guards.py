"""Policy people cannot get around, through signed Slack requests against the emulator:
edits in the modal, the requester's own clicks, a conflict's choice, claims and snoozes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

from orchestrator.clock import FakeClock
from storage.models import Decision
from tests.bot.conftest import ALICE, BOB, CAROL, DAVE, FRANK, PAYMENTS, Baton
from tests.conftest import EXAMPLE_FLOWS, TEST_FLOWS

M = timedelta(minutes=1)


def shown(message) -> str:  # type: ignore[no-untyped-def]
    return json.dumps(message.blocks, ensure_ascii=False)


def buttons(message) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


def gate_messages(baton: Baton, ref: str = "R-1") -> list:  # type: ignore[type-arg]
    return [m for m in baton.thread(baton.run_card(ref)) if "gate `" in shown(m)]


# -- issue 21.1: the edit modal passes policy again ---------------------------------------------
def test_an_edit_in_the_modal_past_the_limit_is_refused_and_nothing_runs(
        baton: Baton, ledger: Callable) -> None:
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=20000", user=ALICE,
                               channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    baton.driver.click(user=BOB, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
    assert baton.modal(BOB).callback_id == "gate.edit"
    baton.submit(BOB, {"edit:amount": "9999999", "reason": "Pay the lot"})
    baton.settle()
    (refusal,) = baton.ephemerals(BOB)
    assert "boundary 'amount-limit'" in refusal.text and "nothing was changed" in refusal.text
    still = baton.slack.workspace.message(PAYMENTS, gate.ts)
    assert "gate.decide.approve" in buttons(still)  # still open, nothing decided
    run = baton.engine.get_run("R-1")
    assert (run.status, run.inputs["amount"]) == ("waiting", 20000.0) and ledger() == []
    with baton.engine.db.read() as s:
        assert s.exec(Decision.__table__.select()).all() == []  # type: ignore[attr-defined]


def test_an_edit_that_needs_the_cfo_goes_to_the_cfo_not_to_the_editor(make_baton, ledger) -> None:  # type: ignore[no-untyped-def]
    baton: Baton = make_baton(TEST_FLOWS)
    baton.driver.slash_command("run edit-recheck amount=1000", user=ALICE, channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    baton.driver.click(user=BOB, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
    baton.submit(BOB, {"edit:amount": "60000", "edit:vendor": "ACME", "edit:urgent": "false"})
    baton.settle()
    told = baton.ephemerals(BOB)[-1].text
    assert "break boundary 'amount-limit'" in told and "needs a decision" in told
    (_, boundary) = gate_messages(baton)
    card = shown(boundary)
    assert "Boundary 'amount-limit' needs a decision" in card and "*Can decide:* <@U0ERIN001>" in card
    baton.driver.click(user=BOB, action_id="gate.decide.approve", channel=PAYMENTS, ts=boundary.ts)
    baton.settle()
    assert baton.slack.workspace.modal_stack(BOB) == []  # not his to allow
    assert "because of your edit" in baton.ephemerals(BOB)[-1].text
    baton.driver.click(user="U0ERIN001", action_id="gate.decide.approve", channel=PAYMENTS,
                       ts=boundary.ts)
    baton.submit("U0ERIN001", {"reason": "Board approved the milestone"})
    baton.settle()
    assert "*Allow this once* by <@U0ERIN001>" in shown(
        baton.slack.workspace.message(PAYMENTS, boundary.ts))
    (*_, cfo) = gate_messages(baton)
    assert "CFO approval for a large payment" in shown(cfo) and ledger() == []
    baton.driver.click(user="U0ERIN001", action_id="gate.decide.approve", channel=PAYMENTS, ts=cfo.ts)
    baton.settle()
    assert [e["inputs"]["amount"] for e in ledger()] == [60000.0]


# -- issue 24.3: the requester is not an approver under four-eyes --------------------------------
def test_the_requester_is_not_listed_pinged_pending_or_let_into_a_modal(make_baton) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    baton: Baton = make_baton(clock=clock)
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=20000", user=BOB,
                               channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    card = shown(gate)
    assert "*Can decide:* <@U0CAROL01>" in card and "U0BOB0001>, " not in card
    assert "<@U0BOB0001>" not in gate.text  # the gate's ping
    for action in ("gate.decide.approve", "gate.edit", "gate.decide.reject"):
        baton.driver.click(user=BOB, action_id=action, channel=PAYMENTS, ts=gate.ts)
        baton.settle()
        assert baton.slack.workspace.modal_stack(BOB) == []  # refused before any modal
    refusals = [e for e in baton.ephemerals(BOB) if "four-eyes" in e.text]
    assert len(refusals) == 3 and "stop the run" in refusals[0].text

    baton.driver.open_home(user=BOB)
    baton.settle()
    assert "Waiting for you (0)" in shown(baton.slack.workspace.home(BOB))
    baton.driver.open_home(user=CAROL)
    baton.settle()
    assert "Waiting for you (1)" in shown(baton.slack.workspace.home(CAROL))
    baton.driver.slash_command("status", user=BOB, channel=PAYMENTS)
    baton.settle()
    assert "Waiting for you (0)" in shown(baton.ephemerals(BOB)[-1])
    baton.driver.slash_command("status R-1", user=CAROL, channel=PAYMENTS)
    baton.settle()
    status = shown(baton.ephemerals(CAROL)[-1])
    assert status.endswith('can decide: <@U0CAROL01>"}}]')  # Bob only as the requester

    clock.advance(20 * M)
    baton.engine.fire_due_timers()  # the reminder to level 1: Carol, not Bob
    baton.settle()
    reminder = baton.thread(baton.run_card())[-1]
    assert "Reminder" in reminder.text and "<@U0CAROL01>" in reminder.text
    assert "<@U0BOB0001>" not in reminder.text
    assert baton.engine.get_run("R-1").status == "waiting"


# -- issue 24.1: a conflict's choice has the effect the flow states ------------------------------
def test_following_a_warning_opens_the_approval_and_the_card_says_so(
        baton: Baton, ledger: Callable) -> None:
    baton.driver.slash_command("run vendor-payment vendor=TEST-CO amount=500", user=ALICE,
                               channel=PAYMENTS)
    baton.settle()
    conflict = baton.gate_message()
    assert "Agents disagree" in shown(conflict)
    assert "Following warn means gate 'approve' must approve" in shown(conflict)
    baton.driver.click(user=FRANK, action_id="gate.decide.follow_research", channel=PAYMENTS,
                       ts=conflict.ts)
    baton.submit(FRANK, {"reason": "TEST-CO is a test vendor; do not pay"})
    baton.settle()
    decided = baton.slack.workspace.message(PAYMENTS, conflict.ts)
    words = shown(decided)
    assert "*Follow research (warn)* by <@U0FRANK01>" in words
    assert "Then: gate 'approve' must approve before the run goes on" in words
    assert "Approved" not in words and "Approved" not in decided.text
    (_, approval) = gate_messages(baton)
    asked = shown(approval)
    assert "Asked because conflict `signals` followed research (warn)" in asked
    assert "TEST-CO is a test vendor; do not pay" in asked
    assert baton.engine.get_run("R-1").status == "waiting" and ledger() == []
    baton.driver.click(user=CAROL, action_id="gate.decide.reject", channel=PAYMENTS, ts=approval.ts)
    baton.submit(CAROL, {"reason": "Test vendor"})
    baton.settle()
    assert baton.engine.get_run("R-1").status == "rejected" and ledger() == []


def test_a_conflict_with_no_signal_is_not_shown_as_a_disagreement(make_baton, ledger) -> None:  # type: ignore[no-untyped-def]
    baton: Baton = make_baton(TEST_FLOWS)
    baton.driver.slash_command("run no-signal", user=ALICE, channel=PAYMENTS)
    baton.settle()
    failed = baton.gate_message()
    assert "Agent first failed" in shown(failed)
    baton.driver.click(user=DAVE, action_id="gate.decide.continue", channel=PAYMENTS, ts=failed.ts)
    baton.settle()
    after = shown(baton.slack.workspace.message(PAYMENTS, failed.ts))
    assert "*Continue without it* by <@U0DAVE001>" in after and "Approved" not in after
    everything = " ".join(shown(m) + m.text for m in baton.thread(baton.run_card()))
    assert "Agents disagree" not in everything and "Stop the run" not in everything
    (_, approval) = gate_messages(baton)
    assert "Asked because conflict `signals` followed no signal (every agent failed)" in shown(approval)
    trace = baton.engine.get_run("R-1")
    assert trace.context["conflicts"]["signals"]["effect"] == "gate" and ledger() == []


# -- issue 24.2 and 21.10: claims and snoozes ------------------------------------------------------
def test_a_snooze_after_a_claim_keeps_both_the_claim_and_the_later_deadline(make_baton) -> None:  # type: ignore[no-untyped-def]
    """The issue's example: at level 2 the next step is due; Dave claims (his until a
    minute later), then snoozes 15m. The deadline stays, the claim stays."""
    clock = FakeClock()
    t0 = clock.now()
    baton: Baton = make_baton(TEST_FLOWS, clock=clock)
    baton.driver.slash_command("run escalating", user=ALICE, channel=PAYMENTS)
    baton.settle()
    clock.advance(30 * M)
    baton.engine.fire_due_timers()  # level 2: Dave, next step at +90m
    baton.settle()
    clock.advance(1 * M)
    (dm,) = baton.dms(DAVE)
    baton.driver.click(user=DAVE, action_id="gate.claim", channel=dm.channel, ts=dm.ts)
    baton.settle()
    baton.driver.choose(f"{baton.engine.open_gates()[0].id}:900", user=DAVE,
                        action_id="gate.snooze", channel=dm.channel, ts=dm.ts)
    baton.settle()
    (gate,) = baton.engine.open_gates()
    due = t0 + 91 * M
    assert (gate.esc_state, gate.claimed_by) == ("claimed", "dave")
    assert gate.next_deadline.replace(tzinfo=None) == due.replace(tzinfo=None)  # type: ignore[union-attr]
    at = f"{due:%Y-%m-%d %H:%M} UTC"
    card = shown(baton.slack.workspace.message(dm.channel, dm.ts))
    assert f"next step {at}" in card and f"claimed by Dave Kim until {at}" in card
    note = baton.thread(baton.run_card())[-1].text
    assert "snoozed" in note and f"next step at {due:%H:%M} UTC" in note
    baton.driver.slash_command("status", user=DAVE, channel=PAYMENTS)
    baton.settle()
    assert f"next step {at} · claimed by Dave Kim" in shown(baton.ephemerals(DAVE)[-1])
    clock.advance(14 * M)
    assert baton.engine.fire_due_timers() == 0  # the snooze ends: the claim still holds
    clock.advance(46 * M)
    assert baton.engine.fire_due_timers() == 1  # the claim's end: on to level 3
    assert baton.engine.open_gates()[0].esc_level == 2


def test_approvers_snoozing_in_turn_cannot_keep_the_chain_from_failing_closed(
        make_baton, ledger, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With no channel to post in, every approver gets the gate by DM, with the snooze menu.
    Bob and Carol, then Dave at level 2, each snooze 1h a minute before the next step, for
    ever: the chain still fails closed, at most max_postpone (1h) after its schedule."""
    org = tmp_path / "org.yaml"
    org.write_text((EXAMPLE_FLOWS / "org.yaml").read_text().replace("default_channel: payments", ""))
    clock = FakeClock()
    baton: Baton = make_baton(TEST_FLOWS, clock=clock, org=org)
    run = baton.engine.start_run("snooze-cap", {}, "alice")
    baton.settle()
    replies: list[str] = []
    for turn in range(40):
        if baton.engine.get_run(run.ref).status != "waiting":
            break
        (gate,) = baton.engine.open_gates()
        who = DAVE if gate.esc_level == 1 else (BOB, CAROL)[turn % 2]
        due = gate.next_deadline.replace(tzinfo=None)  # type: ignore[union-attr]
        clock.advance(due - clock.now().replace(tzinfo=None) - M)  # a minute before it
        dm = baton.dms(who)[-1]
        baton.driver.choose(f"{gate.id}:3600", user=who, action_id="gate.snooze",
                            channel=dm.channel, ts=dm.ts)
        baton.settle()
        replies.append(baton.ephemerals(who)[-1].text)
        clock.advance(M)
        baton.engine.fire_due_timers()
        baton.settle()
    final = baton.engine.get_run(run.ref)
    assert final.status == "rejected" and ledger() == []
    assert "escalation chain 'chain'" in (final.reason or "")
    assert any("at most 1h past its schedule, max_postpone" in r for r in replies)
    assert len(replies) < 10
    # the chain's own schedule is 1h; it failed closed at most the 1h cap after that
    took = final.finished_at.replace(tzinfo=None) - final.created_at.replace(tzinfo=None)  # type: ignore[union-attr]
    assert timedelta(hours=1) < took <= timedelta(hours=2)
