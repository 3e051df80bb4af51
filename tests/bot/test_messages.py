"""Conflict and escalation messages, DMs, hostile text, the App Home, edit-and-approve."""

import json
import time
from datetime import timedelta

from sqlmodel import col, select

from orchestrator.clock import FakeClock
from storage.models import SlackInbox
from tests.bot.conftest import ALICE, BOB, CAROL, DAVE, ERIN, FRANK, PAYMENTS, Baton
from tests.conftest import TEST_FLOWS


def blocks_of(message) -> str:  # type: ignore[no-untyped-def]
    return json.dumps(message.blocks, ensure_ascii=False)


def test_conflict_shows_signals_side_by_side_with_follow_buttons(make_baton) -> None:  # type: ignore[no-untyped-def]
    baton: Baton = make_baton(TEST_FLOWS)
    baton.driver.slash_command("run conflicts policy=ask", user=ALICE, channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    shown = blocks_of(gate)
    assert "Agents disagree" in shown
    assert "research: ok" in shown and "risk: warn/medium" in shown and "compliance: block/high" in shown
    # each signal with the mark the gate cards draw it with
    assert ":large_green_circle: research: ok" in shown and ":large_yellow_circle: risk: warn/medium" \
        in shown and ":red_circle: compliance: block/high" in shown
    actions = [e["action_id"] for b in gate.blocks if b["type"] == "actions" for e in b["elements"]]
    assert actions == ["gate.decide.follow_compliance", "gate.decide.follow_risk",
                       "gate.decide.follow_research"]
    assert "<@U0FRANK01>" in shown  # the deciders are pinged
    baton.driver.click(user=FRANK, action_id="gate.decide.follow_risk", channel=PAYMENTS, ts=gate.ts)
    baton.submit(FRANK, {"reason": "Domestic vendor: the rule does not apply"})
    baton.settle()
    decided = blocks_of(baton.slack.workspace.message(PAYMENTS, gate.ts))
    assert "Follow risk (warn)" in decided and "Domestic vendor" in decided
    assert baton.engine.get_run("R-1").status == "succeeded"


def test_escalation_pings_the_next_level_by_dm_after_the_wait(make_baton) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    baton: Baton = make_baton(TEST_FLOWS, clock=clock)
    baton.driver.slash_command("run escalating", user=ALICE, channel=PAYMENTS)
    baton.settle()
    assert baton.dms(DAVE) == []
    clock.advance(timedelta(minutes=20))
    baton.engine.fire_due_timers()  # the reminder
    baton.settle()
    card = baton.run_card()
    reminder = baton.thread(card)[-1]
    assert "Reminder" in reminder.text and "<@U0BOB0001>" in reminder.text

    clock.advance(timedelta(minutes=10))
    baton.engine.fire_due_timers()  # 30 minutes: level 2
    baton.settle()
    note = baton.thread(card)[-1]
    assert "escalated to level 2" in note.text and "<@U0DAVE001>" in note.text
    (dm,) = baton.dms(DAVE)
    shown = blocks_of(dm)
    assert "gate.decide.approve" in shown and "gate.claim" in shown and "gate.snooze" in shown
    # the DM says why it came to him
    why = "No decision within 30m at level 1, so it escalated to level 2 of 3: you are finance-lead."
    assert "*Why you:*" in shown and why in shown
    gate = baton.gate_message()
    assert "escalation level 2 of 3" in blocks_of(baton.slack.workspace.message(PAYMENTS, gate.ts))
    assert "Why you" not in blocks_of(baton.slack.workspace.message(PAYMENTS, gate.ts))

    # Dave claims from his DM: pings pause, and the thread says so
    baton.driver.click(user=DAVE, action_id="gate.claim", channel=dm.channel, ts=dm.ts)
    baton.settle()
    assert "is on it" in baton.thread(card)[-1].text
    assert why in blocks_of(baton.slack.workspace.message(dm.channel, dm.ts))  # kept when redrawn
    # someone asked to decide hears who asked
    assert "can now decide" in baton.engine.reassign("R-1", "dave", "erin")
    baton.settle()
    (asked,) = baton.dms(ERIN)
    assert "Dave Kim asked you to decide." in blocks_of(asked)
    assert why in blocks_of(baton.slack.workspace.message(dm.channel, dm.ts))
    # and decides from the DM
    baton.driver.click(user=DAVE, action_id="gate.decide.approve", channel=dm.channel, ts=dm.ts)
    baton.settle()
    assert baton.engine.get_run("R-1").status == "succeeded"
    updated_dm = baton.slack.workspace.message(dm.channel, dm.ts)
    assert "*Approved* by <@U0DAVE001>" in blocks_of(updated_dm)


def test_agent_and_input_text_is_shown_literally(make_baton) -> None:  # type: ignore[no-untyped-def]
    baton: Baton = make_baton(TEST_FLOWS)
    baton.driver.slash_command('run hostile note="<!here> &amp; <@U0BOB0001> <https://x.io|y>"',
                               user=ALICE, channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    everything = [gate, baton.run_card(), *baton.thread(baton.run_card())]
    for message in everything:
        assert "<!channel>" not in message.text and "<!here>" not in message.text
        for block in message.blocks:
            for text in _texts(block):
                if text["type"] == "mrkdwn":
                    assert "<!" not in text["text"] and "<http" not in text["text"]
                    assert "evil" not in text["text"]
    shown = blocks_of(gate)
    assert "&lt;!channel&gt; look at this &lt;@U0ERIN001&gt; &lt;http://evil.example|click&gt;" in shown
    assert "\u202e" not in shown  # no right-to-left override
    card = blocks_of(baton.run_card())
    # what was typed arrives as text (Slack's entities decoded, the mention as @U...), escaped
    assert "note: &lt;!here&gt; &amp; @U0BOB0001 &lt;https://x.io|y&gt;" in card


def _texts(block: dict) -> list[dict]:
    found = []
    if isinstance(block, dict):
        if block.get("type") in ("mrkdwn", "plain_text") and "text" in block:
            found.append(block)
        for value in block.values():
            if isinstance(value, dict | list):
                found.extend(_texts(value) if isinstance(value, dict) else
                             [t for item in value for t in _texts(item)])
    return found


def test_edit_and_approve_through_the_modal(baton: Baton, ledger) -> None:  # type: ignore[no-untyped-def]
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=20000", user=ALICE, channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    baton.driver.click(user=CAROL, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
    modal = baton.modal(CAROL)
    assert modal.callback_id == "gate.edit"
    bad = baton.submit(CAROL, {"edit:amount": "lots", "reason": "x"})
    assert "expected a number" in json.dumps(bad.json())  # shown in the modal, nothing recorded
    baton.submit(CAROL, {"edit:amount": "9000",
                                                 "reason": "Only the first milestone is due"})
    baton.settle()
    assert [e["amount"] for e in ledger()] == [9000.0]
    decided = blocks_of(baton.slack.workspace.message(PAYMENTS, gate.ts))
    assert "edited:" in decided and "amount → 9000" in decided


def test_app_home_lists_pending_approvals_and_my_runs(baton: Baton) -> None:
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=20000", user=ALICE, channel=PAYMENTS)
    baton.settle()
    baton.driver.open_home(user=BOB)
    baton.settle()
    home = blocks_of(baton.slack.workspace.home(BOB))
    assert "Waiting for you (1)" in home and "R-1" in home and "gate.decide.approve" in home
    baton.driver.open_home(user=ALICE)
    baton.settle()
    mine = blocks_of(baton.slack.workspace.home(ALICE))
    assert "Waiting for you (0)" in mine and "*R-1* `vendor-payment` · waiting" in mine


def test_a_burst_of_gates_shows_each_approver_all_of_them_in_few_home_publishes(baton: Baton) -> None:
    """Home views are built when sent: the home shows the state after the burst, and a
    newer publish replaces the ones still queued instead of each being built and sent."""
    for amount in range(20000, 26000, 1000):
        baton.driver.slash_command(f"run vendor-payment vendor=ACME amount={amount}", user=ALICE,
                                   channel=PAYMENTS)
    baton.settle()
    home = blocks_of(baton.slack.workspace.home(BOB))
    assert "Waiting for you (6)" in home and all(f"R-{n}" in home for n in range(1, 7))
    published = [c for c in baton.slack.calls_to("views.publish", ok=True)
                 if c.args.get("user_id") == BOB]
    assert 1 <= len(published) <= 6
    assert all("render" not in c.args and "principal" not in c.args for c in published)


def test_a_home_with_more_gates_than_it_lists_counts_them_all_and_lists_the_oldest(baton: Baton) -> None:
    """The home lists the first 15 gates waiting (the oldest gates first) and counts every
    one, read in one statement (a window count before its LIMIT); a decision takes one off
    at once."""
    for amount in range(20000, 20017):
        baton.driver.slash_command(f"run vendor-payment vendor=ACME amount={amount}", user=ALICE,
                                   channel=PAYMENTS)
    baton.settle()

    def listed(home: str) -> set[str]:
        return {f"R-{n}" for n in range(1, 18) if f"*R-{n}*" in home}

    def oldest() -> set[str]:  # the runs start side by side: their gates open in any order
        return {f"R-{gate.run_id}" for gate in sorted(baton.engine.open_gates(),
                                                      key=lambda gate: gate.id)[:15]}

    home = blocks_of(baton.slack.workspace.home(BOB))
    assert "Waiting for you (17)" in home and "2 more: /baton status" in home
    assert listed(home) == oldest() and len(oldest()) == 15
    baton.driver.open_home(user=ALICE)
    baton.settle()
    mine = blocks_of(baton.slack.workspace.home(ALICE))  # her own runs are not hers to decide
    assert "Waiting for you (0)" in mine and "*R-17* `vendor-payment` · waiting" in mine
    first = baton.gate_message()
    baton.driver.click(user=BOB, action_id="gate.decide.approve", channel=PAYMENTS, ts=first.ts)
    baton.submit(BOB, {"reason": "Invoice matches PO 4471"})
    baton.settle()
    home = blocks_of(baton.slack.workspace.home(BOB))
    assert "Waiting for you (16)" in home and "1 more: /baton status" in home
    assert "R-1" not in listed(home) and listed(home) == oldest() and len(oldest()) == 15


def test_a_stopped_run_leaves_its_approvers_homes(baton: Baton) -> None:
    """A gate the run leaves open when it is stopped is cancelled: its message loses its
    buttons, and it leaves the homes of the people who could have decided it."""
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=20000", user=ALICE, channel=PAYMENTS)
    baton.settle()
    assert "Waiting for you (1)" in blocks_of(baton.slack.workspace.home(BOB))
    assert "Waiting for you (1)" in blocks_of(baton.slack.workspace.home(CAROL))
    baton.driver.slash_command("stop R-1 wrong vendor", user=ALICE, channel=PAYMENTS)
    baton.settle()
    assert baton.engine.get_run("R-1").status == "stopped"
    for approver in (BOB, CAROL):
        home = blocks_of(baton.slack.workspace.home(approver))
        assert "Waiting for you (0)" in home and "gate.decide" not in home


def _home_publishes(baton: Baton, user: str) -> int:
    return len([c for c in baton.slack.calls_to("views.publish", ok=True)
                if c.args.get("user_id") == user])


def test_a_requesters_home_is_published_when_a_run_it_lists_ends_and_not_for_an_older_one(
        baton: Baton) -> None:
    """The home lists the requester's newest 20 runs: a run among them that ends is shown
    ended at once; an older one's end changes nothing there, and is not published."""
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=20000", user=ALICE, channel=PAYMENTS)
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=20001", user=ALICE, channel=PAYMENTS)
    baton.settle()
    baton.driver.slash_command("stop R-2", user=ALICE, channel=PAYMENTS)  # among her newest
    baton.settle()
    mine = blocks_of(baton.slack.workspace.home(ALICE))
    assert "*R-2* `vendor-payment` · stopped" in mine and "*R-1* `vendor-payment` · waiting" in mine
    for _ in range(20):  # R-1 is no longer among her newest 20
        baton.driver.slash_command("run vendor-payment vendor=ACME amount=20000", user=ALICE,
                                   channel=PAYMENTS)
    baton.settle()
    baton.driver.open_home(user=ALICE)
    baton.settle()
    shown, published = blocks_of(baton.slack.workspace.home(ALICE)), _home_publishes(baton, ALICE)
    assert "*R-22*" in shown and "*R-3*" in shown and "*R-2*" not in shown and "*R-1*" not in shown
    baton.driver.slash_command("stop R-1", user=ALICE, channel=PAYMENTS)
    baton.settle()
    assert baton.engine.get_run("R-1").status == "stopped"
    assert _home_publishes(baton, ALICE) == published
    assert blocks_of(baton.slack.workspace.home(ALICE)) == shown
    baton.driver.slash_command("stop R-22", user=ALICE, channel=PAYMENTS)  # her newest: shown
    baton.settle()
    assert _home_publishes(baton, ALICE) == published + 1
    assert "*R-22* `vendor-payment` · stopped" in blocks_of(baton.slack.workspace.home(ALICE))


def test_a_requesters_home_follows_the_run_without_being_opened(baton: Baton) -> None:
    """The home lists each of the requester's newest runs with its status: a run that starts
    and waits at its gate is shown waiting, and decided, shown finished, each published as it
    happens (before, her home said nothing until the run ended or she opened the tab)."""
    assert baton.slack.workspace.home(ALICE) is None
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=20000", user=ALICE, channel=PAYMENTS)
    baton.settle()
    assert baton.engine.get_run("R-1").status == "waiting"
    assert "*R-1* `vendor-payment` · waiting" in blocks_of(baton.slack.workspace.home(ALICE))
    gate = baton.gate_message()
    baton.driver.click(user=CAROL, action_id="gate.decide.approve", channel=PAYMENTS, ts=gate.ts)
    baton.submit(CAROL, {"reason": "invoice matches the PO"})
    baton.settle()
    status = baton.engine.get_run("R-1").status
    assert status == "succeeded"
    assert f"*R-1* `vendor-payment` · {status}" in blocks_of(baton.slack.workspace.home(ALICE))


def test_commands_work_in_a_dm_and_after_a_mention(baton: Baton) -> None:
    baton.driver.direct_message("flows", user=ALICE)
    baton.driver.mention("<@U0BATON00> run vendor-payment vendor=ACME amount=5000",
                         user=ALICE, channel=PAYMENTS)
    baton.settle()
    dm = baton.dms(ALICE)
    assert any("vendor-payment" in blocks_of(m) for m in dm)
    assert baton.engine.get_run("R-1").status == "succeeded"
    assert baton.run_card().text.startswith("R-1")


def test_a_dm_and_a_mention_are_stored_before_slack_gets_its_answer(baton: Baton) -> None:
    """Slack forgets an event once it has its 200: by then the event must be in the inbox,
    where a restarted or other replica finds it if this process dies before answering it."""
    told = [baton.driver.direct_message("flows", user=ALICE),
            baton.driver.mention("<@U0BATON00> flows", user=ALICE, channel=PAYMENTS)]
    with baton.engine.db.read() as s:  # read at once, before anything settles
        rows = s.exec(select(SlackInbox).order_by(col(SlackInbox.id))).all()
    stored = [row.payload["event_id"] for row in rows]
    assert all(reply.ok for reply in told)
    assert stored == [json.loads(reply.request.body)["event_id"] for reply in told]
    baton.settle()
    mention = json.loads(told[1].request.body)["event"]["ts"]
    assert [m.bot_id is not None for m in baton.dms(ALICE)] == [False, True]  # each answered once
    assert [m.bot_id is not None for m in baton.slack.workspace.messages(PAYMENTS)
            if m.thread_ts == mention and m.ts != mention] == [True]


def test_a_run_at_its_gate_before_its_card_went_out_posts_the_card_once(make_baton) -> None:  # type: ignore[no-untyped-def]
    """The card's post, still queued when the run reaches its gate, is rewritten to show the
    gate: one call to Slack instead of a post and an update."""
    baton = make_baton()
    # Nothing goes to Slack, and no event becomes Slack calls, until the test says so: with
    # the pump's own thread running, it could turn `run_started` into the card's post while
    # our `deliver_pending` skips that locked event (PostgreSQL), and the card would go out
    # before the gate opened (then a post and an update is right).
    baton.service.outbox.stop()
    baton.service.pump.stop()
    run = baton.engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    deadline = time.monotonic() + 10
    while baton.engine.get_run(run.ref).status != "waiting" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert baton.service.pump.dispatcher.deliver_pending() == 2  # run_started, gate_opened
    assert baton.service.outbox.drain()
    cards = [c for c in baton.slack.calls_to("chat.postMessage", ok=True)
             if str(c.args.get("text", "")).startswith(run.ref)]
    assert len(cards) == 1 and "waiting" in cards[0].args["text"].lower()
    assert baton.slack.calls_to("chat.update") == []
    assert baton.gate_message(run.ref).ts  # threaded under the one card


def test_a_routers_signal_says_which_branch_it_chose(baton: Baton) -> None:
    baton.driver.slash_command("run support-triage service=api severity=sev1", user=ALICE, channel=PAYMENTS)
    baton.settle()
    shown = blocks_of(baton.gate_message())
    assert "Publish the status-page post?" in shown
    assert ":twisted_rightwards_arrows: *supervisor* chose comms" in shown
    assert ":white_circle: *supervisor*" not in shown and "*supervisor* -" not in shown
    assert ":large_green_circle: *comms* ok" in shown
