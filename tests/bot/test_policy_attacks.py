"""Ways around edits re-checked, four-eyes and conflict choices, tried through signed Slack
requests against the emulator: the buttons people see, and requests they craft themselves
(Slack lets anyone send any action they can see)."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlencode

from sandbox import payloads
from tests.bot.conftest import ALICE, BOB, CAROL, ERIN, FRANK, PAYMENTS, Baton
from tests.conftest import TEST_FLOWS

FORM = "application/x-www-form-urlencoded"


def shown(message) -> str:  # type: ignore[no-untyped-def]
    return json.dumps(message.blocks, ensure_ascii=False)


def gate_messages(baton: Baton, ref: str = "R-1") -> list:  # type: ignore[type-arg]
    return [m for m in baton.thread(baton.run_card(ref)) if "gate `" in shown(m)]


def test_the_editor_cannot_click_through_what_their_edit_made_necessary(
        make_baton: Callable[..., Baton], ledger: Callable) -> None:
    """Bob edits 1,000 to 60,000 in the modal. The gate above 20,000 and the 50,000 boundary
    come after his gate, and he is an approver of both: he used to approve the one and
    allow the other himself."""
    baton = make_baton(TEST_FLOWS)
    baton.driver.slash_command("run edit-ahead amount=1000", user=ALICE, channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    baton.driver.click(user=BOB, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
    baton.submit(BOB, {"edit:amount": "60000"})
    baton.settle()
    (_, large) = gate_messages(baton)
    assert "*Can decide:* <@U0CAROL01>, <@U0ERIN001>" in shown(large)
    baton.driver.click(user=BOB, action_id="gate.decide.approve", channel=PAYMENTS, ts=large.ts)
    baton.settle()
    assert "because of values you edited" in baton.ephemerals(BOB)[-1].text
    baton.driver.click(user=CAROL, action_id="gate.decide.approve", channel=PAYMENTS, ts=large.ts)
    baton.settle()
    (*_, limit) = gate_messages(baton)
    assert "Boundary 'limit' needs a decision" in shown(limit)
    baton.driver.click(user=BOB, action_id="gate.decide.approve", channel=PAYMENTS, ts=limit.ts)
    baton.settle()
    assert baton.slack.workspace.modal_stack(BOB) == []  # refused before the reason modal
    assert "because of values you edited" in baton.ephemerals(BOB)[-1].text
    assert ledger() == []
    baton.driver.click(user=ERIN, action_id="gate.decide.approve", channel=PAYMENTS, ts=limit.ts)
    baton.submit(ERIN, {"reason": "Board approved"})
    baton.settle()
    assert [e["inputs"]["amount"] for e in ledger()] == [60000.0]


def test_a_choice_follows_the_card_it_was_made_on(make_baton: Callable[..., Baton],
                                                   ledger: Callable) -> None:
    """The card says "Follow analyst (warn)" and what following a warning does. The analyst
    then sends ok; the CFO's click on that card used to follow the new ok and pay."""
    baton = make_baton(TEST_FLOWS)
    baton.driver.slash_command("run late-signal", user=ALICE, channel=PAYMENTS)
    baton.settle()
    baton.engine.submit_signal("R-1", "analyst", {"verdict": "warn", "summary": "Odd payee"}, "frank")
    baton.settle()
    conflict = baton.gate_message()
    assert "Follow analyst (warn)" in shown(conflict)
    assert "Following warn means gate 'approve' must approve" in shown(conflict)
    baton.engine.submit_signal("R-1", "analyst", {"verdict": "ok", "summary": "All fine"}, "frank")
    baton.driver.click(user=ERIN, action_id="gate.decide.follow_analyst", channel=PAYMENTS,
                       ts=conflict.ts)
    baton.submit(ERIN, {"reason": "Look at the payee"})
    baton.settle()
    decided = shown(baton.slack.workspace.message(PAYMENTS, conflict.ts))
    assert "Then: gate 'approve' must approve before the run goes on" in decided
    (_, approval) = gate_messages(baton)
    assert "Asked because conflict `verdict` followed analyst (warn)" in shown(approval)
    assert baton.engine.get_run("R-1").status == "waiting" and ledger() == []


def test_the_requester_cannot_choose_their_own_runs_signal_even_with_a_crafted_submission(
        baton: Baton, ledger: Callable) -> None:
    """Frank, the risk lead, asks to pay TEST-CO 500: following compliance (ok) would skip
    the four-eyes approval. His click is refused before a modal opens; a reason modal's
    submission he builds himself, from one Erin opened, is refused too."""
    baton.driver.slash_command("run vendor-payment vendor=TEST-CO amount=500", user=FRANK,
                               channel=PAYMENTS)
    baton.settle()
    conflict = baton.gate_message()
    assert "*Can decide:* <@U0ERIN001>" in shown(conflict)
    baton.driver.click(user=FRANK, action_id="gate.decide.follow_compliance", channel=PAYMENTS,
                       ts=conflict.ts)
    baton.settle()
    assert baton.slack.workspace.modal_stack(FRANK) == []
    assert "four-eyes" in baton.ephemerals(FRANK)[-1].text

    baton.driver.click(user=ERIN, action_id="gate.decide.follow_compliance", channel=PAYMENTS,
                       ts=conflict.ts)
    ws = baton.slack.workspace
    view = ws.set_view_state(baton.modal(ERIN).id, payloads.input_state(
        baton.modal(ERIN).blocks, {"reason": "Known vendor, pay it"}))
    forged = payloads.view_submission(ws, user=ws.user(FRANK), view=view,
                                      trigger_id=ws.issue_trigger(FRANK))
    sent = baton.driver.send(baton.driver.sign(
        urlencode({"payload": json.dumps(forged)}).encode(), FORM))
    assert sent.status == 200
    baton.settle()
    assert baton.engine.get_run("R-1").status == "waiting" and ledger() == []
    assert "four-eyes" in baton.ephemerals(FRANK)[-1].text
    assert "gate.decide.follow_compliance" in shown(ws.message(PAYMENTS, conflict.ts))
