"""Each gate takes exactly one decision and each person is told what happened (issue 8,
item 2): 100 clicks on one gate from 10 people over real HTTP, all in flight at once, mixed
approve and reject, each click also sent a second time (the same bytes again, or as Slack's
retry with X-Slack-Retry-Num). One outcome, consistent with the quorum; every click that
did not settle the gate gets exactly one ephemeral saying what became of it (recorded,
refused, a duplicate, too late); the gate message shows the one outcome.

How long the answers took is noted for the report, not asserted: here the 100 clients, the
Slack emulator and Baton share one process on a shared machine. The benchmark times a burst
of 100 clicks against `baton serve --http` from a process of their own (bench/click_ack.py),
against Slack's 3 s."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import col, select

from gates.quorum import Vote, tally
from sandbox import Delivery, SlackRequest
from storage.models import Decision, Gate, TraceEntry
from tests.bot.conftest import Baton
from tests.figures import Figures
from tests.reliability.conftest import (
    APPROVERS,
    EVERYONE,
    ORG,
    PAYMENTS,
    surface_problems,
)

pytestmark = pytest.mark.reliability(
    item="2", promise="Each gate takes exactly one decision (per quorum seat), whatever the double "
                      "clicks, concurrent approvers or Slack retries; each person is told what "
                      "happened")

CLICKS_PER_PERSON = 5  # distinct clicks (trigger ids); each is sent twice
# What an ephemeral to someone whose click did not settle the gate may say.
TOLD = ("recorded", "not an approver", "already", "one decision per person", "finished")


@pytest.mark.parametrize(("flow", "quorum"), [("one-approval", 1), ("two-approvals", 2)])
def test_100_concurrent_clicks_make_one_outcome_and_everyone_is_told(
        reliable: Baton, flow: str, quorum: int, figures: Figures, ledger: Callable) -> None:
    baton = reliable
    baton.driver.slash_command(f"run {flow} amount=100", user=EVERYONE[0], channel=PAYMENTS)
    baton.settle()
    gate_message = baton.gate_message()
    already = {user: len(baton.ephemerals(user)) for user in EVERYONE}  # "Starting …"

    # Every click built against the gate message as everyone sees it now, before any lands.
    clicks: list[tuple[str, SlackRequest]] = []
    for person, user in enumerate(EVERYONE):
        for n in range(CLICKS_PER_PERSON):
            option = "approve" if (person + n) % 3 else "reject"
            clicks.append((user, baton.driver.prepare_click(
                user=user, action_id=f"gate.decide.{option}", channel=PAYMENTS, ts=gate_message.ts)))
    sends: list[Callable[[], Delivery]] = []
    for i, (_, request) in enumerate(clicks):
        sends.append(lambda r=request: baton.driver.send(r))
        if i % 2:  # the same bytes again: a double click, a replayed capture
            sends.append(lambda r=request: baton.driver.send(r))
        else:  # Slack's retry: the same body, signed afresh, marked as a retry
            sends.append(lambda r=request: baton.driver.post(
                r.body, r.headers["Content-Type"], headers={"X-Slack-Retry-Num": "1",
                                                            "X-Slack-Retry-Reason": "http_timeout"}))
    assert len(sends) == 100
    start = threading.Barrier(len(sends))

    def fire(send: Callable[[], Delivery]) -> Delivery:
        start.wait()
        return send()

    with ThreadPoolExecutor(len(sends)) as pool:
        replies = list(pool.map(fire, sends))
    figures.add("requests_sent", len(replies))
    figures.add("faults_injected", len(replies) - len(clicks))  # the copies
    assert [r.status for r in replies] == [200] * len(replies)
    figures.note("slowest_ack_s", round(max(r.elapsed for r in replies), 3))
    figures.note("median_ack_s", round(sorted(r.elapsed for r in replies)[len(replies) // 2], 3))
    baton.settle(timeout=30)

    with baton.engine.db.read() as s:
        gate = s.exec(select(Gate)).one()
        decisions = list(s.exec(select(Decision).where(col(Decision.counted))
                                .order_by(col(Decision.id))))
        closed = s.exec(select(TraceEntry).where(TraceEntry.kind == "gate_decided")).all()
    # One outcome, and the one the quorum rules give for the decisions recorded.
    assert gate.status == "decided" and len(closed) == 1
    votes = [Vote(d.decider, d.option, d.effect) for d in decisions]  # type: ignore[arg-type]
    result = tally(votes, quorum=quorum, reject_ends=True, eligible=set(gate.approvers))
    assert result.outcome == gate.effect, (votes, gate.effect)
    assert {d.decider for d in decisions} <= set(gate.approvers)
    assert len({d.decider for d in decisions}) == len(decisions)  # one per person
    assert len(decisions) <= quorum  # nobody decided after the gate closed
    run = baton.engine.get_run("R-1")
    assert run.status == ("succeeded" if gate.effect == "approve" else "rejected")
    assert len(ledger()) == (1 if gate.effect == "approve" else 0)  # the action, at most once
    figures.add("decisions_recorded", len(decisions))
    figures.note("outcome", gate.effect)

    # Everyone told: one ephemeral per click, except the click that settled the gate (the
    # gate message says who decided, for everyone).
    closer = ORG.slack_id(closed[0].actor)
    made = Counter(user for user, _ in clicks)
    lost = 0
    for user in EVERYONE:
        told = baton.ephemerals(user)[already[user]:]
        expected = made[user] - (1 if user == closer else 0)
        lost += max(0, expected - len(told))
        assert len(told) == expected, (user, [e.text for e in told])
        for ephemeral in told:
            assert "R-1" in ephemeral.text and any(w in ephemeral.text for w in TOLD), ephemeral.text
        if user not in APPROVERS:  # refused; or too late, once the run had finished
            assert not any("recorded" in e.text for e in told), [e.text for e in told]
    said = [e.text for u in EVERYONE for e in baton.ephemerals(u)[already[u]:]]
    figures.add("people_told", len(said))
    figures.add("refusals", sum(1 for text in said if "recorded" not in text))
    figures.add("decisions_lost", lost)

    # The gate message shows the single outcome, without buttons.
    shown = baton.slack.workspace.message(PAYMENTS, gate_message.ts)
    word = "*Approved*" if gate.effect == "approve" else "*Rejected*"
    text = json.dumps(shown.blocks, ensure_ascii=False)
    assert word in text and ("*Rejected*" if word == "*Approved*" else "*Approved*") not in text
    assert not any(b["type"] == "actions" for b in shown.blocks)
    for decision in decisions:
        if gate.effect == "approve" or decision.effect == "reject":
            assert f"<@{ORG.slack_id(decision.decider)}>" in text
    assert surface_problems(baton) == []
