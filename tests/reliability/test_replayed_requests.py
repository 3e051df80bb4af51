"""A replayed request changes nothing (issue 21, item 3), tried as someone holding a captured
request would: the exact signed bytes sent again within the five minutes the signature
lasts, or the same body signed afresh (as Slack's own retries are), through the real HTTP
endpoint of the real service. Every state-changing request goes through one door, the
inbox, keyed by what identifies it (bot.inbox.request_key): slash commands (`run`, `stop`,
`halt`, `resume`), clicks, submissions, DMs and mentions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

import pytest
from sqlmodel import col, select

from sandbox.driver import Delivery, Signing
from storage.models import Decision, Gate, Run, SlackInbox, TraceEntry
from tests.bot.conftest import Baton
from tests.figures import Figures
from tests.reliability.conftest import ALICE, BOB, CAROL, ERIN, GRACE, PAYMENTS, footprint

pytestmark = pytest.mark.reliability(
    item="8", promise="A replayed request (Slack or webhook) changes nothing: every command, "
                         "click, submission, DM and mention is acted on once")

FORM = "application/x-www-form-urlencoded"


def halted(baton: Baton) -> bool:
    from storage.runs import halt_state

    with baton.engine.db.read() as s:
        return bool(halt_state(s).halted)


def copies(baton: Baton, first: Delivery, figures: Figures, *,
           resigned: bool = True) -> list[Delivery]:
    """`first` again: the same bytes three times, then (`resigned`) its body signed afresh
    twice, as Slack retries."""
    sent = [baton.driver.replay(first) for _ in range(3)]
    if resigned:
        sent += [baton.driver.redeliver(first, retry_num=n) for n in (1, 2)]
    figures.add("requests_sent", len(sent))
    figures.add("faults_injected", len(sent))
    assert all(r.status == 200 for r in sent), [(r.status, r.body) for r in sent]
    return sent


def test_a_captured_resume_replayed_does_not_lift_a_later_halt(reliable: Baton,
                                                                figures: Figures) -> None:
    """The issue's example: Erin halts, resumes (captured), halts again; the capture sent
    again within five minutes must leave Baton halted."""
    driver = reliable.driver
    assert driver.slash_command("halt drill", user=ERIN, channel=PAYMENTS).status == 200
    resume = driver.slash_command("resume", user=ERIN, channel=PAYMENTS)
    assert "Resumed" in resume.body and not halted(reliable)
    assert driver.slash_command("halt for real", user=ERIN, channel=PAYMENTS).status == 200
    assert halted(reliable)
    figures.add("requests_sent", 3)
    reliable.settle()
    before = footprint(reliable)
    replies = copies(reliable, resume, figures)
    reliable.settle()
    assert halted(reliable), "a replayed /baton resume lifted the emergency stop"
    assert all("already has this very request" in r.body for r in replies)
    assert footprint(reliable) == before  # recognised at the door: not even stored
    figures.add("refusals", len(replies))
    with reliable.engine.db.read() as s:
        kinds = [e.kind for e in s.exec(select(TraceEntry).where(
            col(TraceEntry.kind).in_(("halted", "resumed"))).order_by(col(TraceEntry.id)))]
    assert kinds == ["halted", "resumed", "halted"]


@pytest.mark.parametrize("command", ["run one-approval amount=100", "stop R-1 replayed",
                                     "halt replayed", "resume", "status", "trace R-1 full",
                                     "stats"])
def test_every_command_replayed_changes_nothing(reliable: Baton, figures: Figures,
                                                command: str) -> None:
    driver = reliable.driver
    if not command.startswith("run"):
        driver.slash_command("run one-approval amount=100", user=ALICE, channel=PAYMENTS)
    if command == "resume":
        driver.slash_command("halt", user=ERIN, channel=PAYMENTS)
    reliable.settle()
    user = ERIN if command.split()[0] in ("halt", "resume") else ALICE
    first = driver.slash_command(command, user=user, channel=PAYMENTS)
    figures.add("requests_sent")
    assert first.status == 200 and "already has" not in first.body
    reliable.settle()
    before = footprint(reliable)
    replies = copies(reliable, first, figures)
    reliable.settle()
    after = footprint(reliable)
    # the only thing a copy adds is its own ephemeral answer, which the driver shows
    assert {k: v for k, v in after.items() if k != "ephemerals"} == \
        {k: v for k, v in before.items() if k != "ephemerals"}, command
    assert all("already has this very request" in r.body for r in replies)
    figures.add("refusals", len(replies))


def test_clicks_submissions_dms_and_mentions_replayed_act_once(reliable: Baton, figures: Figures,
                                                               ledger: Callable) -> None:
    driver = reliable.driver
    driver.slash_command("run two-approvals amount=100", user=ALICE, channel=PAYMENTS)
    reliable.settle()
    gate = reliable.gate_message()
    click = driver.click(user=BOB, action_id="gate.decide.approve", channel=PAYMENTS, ts=gate.ts)
    reliable.settle()
    figures.add("requests_sent")
    before = footprint(reliable)
    copies(reliable, click, figures)
    refused = driver.click(user=GRACE, action_id="gate.decide.approve", channel=PAYMENTS, ts=gate.ts)
    reliable.settle()
    told = len(reliable.ephemerals(GRACE))
    copies(reliable, refused, figures)
    dm = driver.direct_message("halt", user=GRACE)  # refused, and said so in the DM
    mention = driver.mention("status", user=ALICE, channel=PAYMENTS)
    reliable.settle()
    answers = (len(reliable.dms(GRACE)), len(reliable.slack.workspace.messages(PAYMENTS)))
    copies(reliable, dm, figures)
    copies(reliable, mention, figures)
    reliable.settle()
    assert len(reliable.ephemerals(GRACE)) == told
    assert (len(reliable.dms(GRACE)), len(reliable.slack.workspace.messages(PAYMENTS))) == answers
    with reliable.engine.db.read() as s:
        assert [d.decider for d in s.exec(select(Decision))] == ["bob"]
        # Grace's `halt` by DM was refused, and the refusal recorded, once
        assert len(s.exec(select(TraceEntry).where(TraceEntry.kind == "refused")).all()) == 1
    assert footprint(reliable)["decision"] == before["decision"]
    # Carol's approval is a request of its own: it closes the gate, once
    carol = driver.click(user=CAROL, action_id="gate.decide.approve", channel=PAYMENTS, ts=gate.ts)
    copies(reliable, carol, figures)
    reliable.settle()
    assert reliable.engine.get_run("R-1").status == "succeeded"
    assert len(ledger()) == 1


def test_requests_without_slacks_ids_are_told_apart_and_each_acts_once(
        reliable: Baton, figures: Figures) -> None:
    """A key chosen from a field the request may lack (trigger_id, view.id, response_url)
    made every such request one request: the second was dropped as a copy of the first.
    Without an id, the signed bytes are the key: different requests act, the same bytes
    again do not. (The same body signed at another moment is another request: only the
    holder of the signing secret can make one, and Slack's own requests carry ids.)"""
    driver = reliable.driver
    driver.slash_command("run two-approvals amount=100", user=ALICE, channel=PAYMENTS)
    reliable.settle()
    gate = reliable.gate_message()

    def click(user: str) -> Delivery:
        payload = {"type": "block_actions", "user": {"id": user}, "channel": {"id": PAYMENTS},
                   "container": {"type": "message", "channel_id": PAYMENTS, "message_ts": gate.ts},
                   "actions": [{"action_id": "gate.decide.approve", "block_id": "gate",
                                "value": json.dumps({"g": 1, "o": "approve"})}]}
        return driver.post(urlencode({"payload": json.dumps(payload)}).encode(), FORM)

    def command(text: str, user: str, at: int | None = None) -> Delivery:
        fields = {"command": "/baton", "text": text, "user_id": user, "channel_id": PAYMENTS,
                  "team_id": reliable.slack.workspace.team.id}
        return driver.post(urlencode(fields).encode(), FORM, signing=Signing(timestamp=at))

    bob, carol = click(BOB), click(CAROL)
    figures.add("requests_sent", 2)
    copies(reliable, bob, figures, resigned=False)
    copies(reliable, carol, figures, resigned=False)
    halt, resume = command("halt", ERIN), command("resume", ERIN)
    figures.add("requests_sent", 2)
    assert not halted(reliable)
    # the same words typed again are a new request: signed at another moment
    again = command("halt", ERIN, at=int(time.time()) - 120)
    copies(reliable, resume, figures, resigned=False)
    reliable.settle()
    assert halted(reliable) and "Halted" in again.body and "Resumed" in resume.body
    with reliable.engine.db.read() as s:
        assert sorted(d.decider for d in s.exec(select(Decision))) == ["bob", "carol"]
        keys = [r.key for r in s.exec(select(SlackInbox))]
    assert len(keys) == len(set(keys)) and not any(k.endswith(":None") for k in keys)
    assert reliable.engine.get_run("R-1").status == "succeeded"
    assert halt.status == 200


def test_a_run_started_twice_by_the_same_request_is_one_run(reliable: Baton,
                                                             figures: Figures) -> None:
    first = reliable.driver.slash_command("run one-approval amount=100", user=ALICE,
                                          channel=PAYMENTS)
    copies(reliable, first, figures)
    reliable.settle()
    with reliable.engine.db.read() as s:
        assert len(s.exec(select(Run)).all()) == 1


def test_one_message_is_one_request_whatever_event_carries_it(reliable: Baton,
                                                              figures: Figures) -> None:
    """A DM or a mention is keyed by the message (its channel and ts), not by the event
    that carries it: the same message delivered again under another event_id (by Slack,
    or signed afresh by whoever holds the secret) starts no second run and halts nothing
    twice. Keyed by event_id, each copy was a new request."""
    driver = reliable.driver
    dm = driver.direct_message("run one-approval amount=100", user=ALICE)
    reliable.settle()  # started before the halt below
    mention = driver.mention("halt drill", user=ERIN, channel=PAYMENTS)
    figures.add("requests_sent", 2)
    reliable.settle()
    assert halted(reliable)
    driver.slash_command("resume", user=ERIN, channel=PAYMENTS)
    reliable.settle()
    before = footprint(reliable)
    for first in (dm, mention):
        envelope = json.loads(first.request.body)
        for n in (1, 2):
            again = {**envelope, "event_id": f"{envelope['event_id']}x{n}",
                     "event_time": envelope["event_time"] + n}
            assert driver.post(json.dumps(again).encode(), "application/json").status == 200
            figures.add("requests_sent")
            figures.add("faults_injected")
    reliable.settle()
    assert footprint(reliable) == before
    assert not halted(reliable), "the mention's copy halted Baton again"
    with reliable.engine.db.read() as s:
        assert len(s.exec(select(Run)).all()) == 1


LOOP = """
name: loop
title: Loop
inputs:
  amount: {type: number, required: true}
steps:
  - boundary:
      id: limit
      check: "inputs.amount <= 50000.0"
      message: "too much"
      on_violation: stop
  - gate:
      id: approve
      title: "Pay it?"
      approvers: "role:finance-approver"
      quorum: 2
      options: [approve, reject, request_changes]
      back_to: limit
"""


def test_a_click_from_an_earlier_visit_of_a_gate_decides_nothing_after_it_reopens(
        make_baton, tmp_path, figures: Figures) -> None:  # type: ignore[no-untyped-def]
    """Sent back for changes, the gate opens again under the same key: Carol's approval of
    the first visit, captured and sent again (the same bytes, or signed afresh as Slack
    retries), or clicked anew on the first visit's message, must not count in the second."""
    import shutil

    from tests.bot.conftest import BOB, CAROL
    from tests.conftest import EXAMPLE_FLOWS

    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(EXAMPLE_FLOWS / "org.yaml", flows / "org.yaml")
    (flows / "loop.yaml").write_text(LOOP)
    baton: Baton = make_baton(flows, org=flows / "org.yaml")
    driver = baton.driver
    driver.slash_command("run loop amount=100", user=ALICE, channel=PAYMENTS)
    baton.settle()
    first = baton.gate_message()
    stale = driver.prepare_click(user=CAROL, action_id="gate.decide.approve", channel=PAYMENTS,
                                 ts=first.ts)  # the first visit's button, clicked later
    carol = driver.click(user=CAROL, action_id="gate.decide.approve", channel=PAYMENTS, ts=first.ts)
    driver.click(user=BOB, action_id="gate.decide.request_changes", channel=PAYMENTS, ts=first.ts)
    figures.add("requests_sent", 2)
    baton.settle()
    with baton.engine.db.read() as s:
        visits = s.exec(select(Gate).order_by(col(Gate.id))).all()
    assert [(g.key, g.status) for g in visits] == [("approve", "decided"), ("approve", "open")]
    copies(baton, carol, figures)
    fresh = json.loads(dict(parse_qsl(stale.body.decode()))["payload"])
    fresh["trigger_id"] = baton.slack.workspace.issue_trigger(CAROL)
    late = driver.post(urlencode({"payload": json.dumps(fresh)}).encode(), FORM)
    figures.add("requests_sent")
    figures.add("faults_injected")
    assert late.status == 200
    baton.settle()
    with baton.engine.db.read() as s:
        second = [d.decider for d in s.exec(select(Decision).where(Decision.gate_id == visits[1].id))]
    assert second == [], "a click from the first visit counted in the second"
    assert any("already decided" in e.text for e in baton.ephemerals(CAROL))
    # the second visit is decided by its own clicks
    reopened = [m for m in baton.thread(baton.run_card())
                if m.ts != first.ts and "gate `" in json.dumps(m.blocks)]
    for user in (CAROL, BOB):
        driver.click(user=user, action_id="gate.decide.approve", channel=PAYMENTS, ts=reopened[-1].ts)
    baton.settle()
    assert baton.engine.get_run("R-1").status == "succeeded"
