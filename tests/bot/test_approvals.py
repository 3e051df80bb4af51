"""A payment approved in Slack, end to end: signed slash command, run card, gate request in
the thread, the reason modal, the message updated to say who approved and why."""

import json
from collections.abc import Callable

from sqlmodel import select

from storage.models import Decision, TraceEntry
from tests.bot.conftest import ALICE, BOB, DAVE, PAYMENTS, Baton


def texts(message) -> str:  # type: ignore[no-untyped-def]
    return json.dumps(message.blocks, ensure_ascii=False)


def start_payment(baton: Baton, amount: str = "20000") -> None:
    reply = baton.driver.slash_command(f"run vendor-payment vendor=ACME amount={amount}",
                                       user=ALICE, channel=PAYMENTS)
    assert reply.status == 200
    baton.settle()


def test_slash_command_to_approval_in_the_thread(baton: Baton, ledger: Callable) -> None:
    start_payment(baton)
    card = baton.run_card()
    assert "R-1 · Vendor payment" in texts(card) and "<@U0ALICE01>" in texts(card)
    gate = baton.gate_message()
    assert gate.thread_ts == card.ts
    blocks = texts(gate)
    assert "Approve vendor payment?" in blocks and "amount: 20,000" in blocks
    for agent in ("research", "risk", "compliance"):
        assert f"*{agent}* ok" in blocks
    assert "amount-limit" in blocks and "<@U0BOB0001>, <@U0CAROL01>" in blocks

    # Slack is slow to open the modal: the click must be answered before the modal opens,
    # not after (the answer never waits for a Web API call).
    baton.slack.faults.next("views.open", delay=1.0)
    click = baton.driver.click(user=BOB, action_id="gate.decide.approve", channel=PAYMENTS, ts=gate.ts)
    assert click.status == 200 and baton.slack.workspace.modal_stack(BOB) == []
    modal = baton.modal(BOB)
    assert modal.callback_id == "gate.reason"
    submitted = baton.submit(BOB, {"reason": "Invoice matches PO 4471"})
    assert submitted.status == 200
    baton.settle()

    decided = baton.slack.workspace.message(PAYMENTS, gate.ts)
    shown = texts(decided)
    assert "*Approved* by <@U0BOB0001>" in shown and "Invoice matches PO 4471" in shown
    assert not any(b["type"] == "actions" for b in decided.blocks)  # buttons replaced
    assert baton.engine.get_run("R-1").status == "succeeded"
    assert len(ledger()) == 1
    with baton.engine.db.read() as s:
        (decision,) = s.exec(select(TraceEntry).where(TraceEntry.kind == "decision")).all()
    assert decision.actor == "bob" and decision.data["reason"] == "Invoice matches PO 4471"
    finished = baton.thread(baton.run_card())[-1]
    assert "R-1 Done" in texts(finished)


def test_someone_else_is_refused_by_ephemeral_and_nothing_changes(baton: Baton) -> None:
    start_payment(baton)
    gate = baton.gate_message()
    baton.driver.click(user=DAVE, action_id="gate.decide.approve", channel=PAYMENTS, ts=gate.ts)
    baton.settle()
    (refusal,) = baton.ephemerals(DAVE)
    assert "not an approver of R-1" in refusal.text
    assert baton.slack.workspace.modal_stack(DAVE) == []
    assert baton.engine.get_run("R-1").status == "waiting"
    with baton.engine.db.read() as s:
        assert s.exec(select(Decision)).all() == []


def test_the_same_click_twice_or_redelivered_records_one_decision(baton: Baton) -> None:
    start_payment(baton)
    gate = baton.gate_message()
    # request_changes needs a reason: the modal, submitted twice (a double click on Submit)
    baton.driver.click(user=BOB, action_id="gate.decide.reject", channel=PAYMENTS, ts=gate.ts)
    first = baton.submit(BOB, {"reason": "Duplicate invoice"})
    assert first.status == 200
    again = baton.driver.replay(first)
    retried = baton.driver.redeliver(first, retry_num=1)
    assert again.status == 200 and retried.status == 200
    baton.settle()
    with baton.engine.db.read() as s:
        assert len(s.exec(select(Decision)).all()) == 1
    assert baton.engine.get_run("R-1").status == "rejected"
