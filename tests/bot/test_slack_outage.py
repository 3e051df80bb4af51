"""Slack misbehaving in scripted patterns, then down altogether: Baton keeps answering its
own requests while Slack answers nothing, and once Slack is back every message it owes is
delivered exactly once, in order in each thread. (BATON_OUTAGE_SECONDS=60 for the full
minute; CI uses a shorter outage.)"""

from __future__ import annotations

import json
import os
import time

import pytest
from sqlmodel import col, select

from storage.models import SlackOutbox
from tests.bot.conftest import ALICE, PAYMENTS, Baton
from tests.figures import Figures

OUTAGE = float(os.environ.get("BATON_OUTAGE_SECONDS", "12"))


def outbox_ids(messages) -> list[int]:  # type: ignore[no-untyped-def]
    return [(m.metadata or {}).get("event_payload", {}).get("outbox_id") for m in messages]


@pytest.mark.reliability(item="3", promise="Every message the bot must send reaches Slack once, "
                         "in order per thread, through 429s, 500s, timeouts, dropped connections "
                         "and an outage; Baton keeps acknowledging meanwhile, never waiting on Slack")
def test_faults_then_an_outage_lose_nothing_and_keep_order(make_baton, figures: Figures  # type: ignore[no-untyped-def]
                                                           ) -> None:
    baton: Baton = make_baton(slack_timeout=0.5)
    faults = baton.slack.faults
    # a scripted mix on the calls Baton makes first
    faults.next("chat.postMessage", status=429, retry_after=1)
    faults.next("chat.postMessage", status=500)
    faults.next("chat.postMessage", drop=True)
    faults.next("chat.update", status=503)
    faults.next("chat.postMessage", delay=1.0)  # Baton gives up at 0.5 s; Slack stores it anyway
    faults.next("views.publish", status=429, retry_after=1)
    for amount in ("20000", "21000", "22000"):
        reply = baton.driver.slash_command(f"run vendor-payment vendor=ACME amount={amount}",
                                           user=ALICE, channel=PAYMENTS)
        assert reply.status == 200
    baton.settle(timeout=60)
    gates = {ref: baton.gate_message(ref) for ref in ("R-1", "R-2", "R-3")}

    # Slack goes down and answers nothing at all until it is back; people keep using Baton,
    # which keeps answering them. An acknowledgement that waited on any Slack call would not
    # arrive before Slack is up again (the driver gives up first): no clock is needed.
    faults.down(hang=True)
    went_down = time.monotonic()
    acks = []
    for ref in ("R-4", "R-5"):
        reply = baton.driver.slash_command("run vendor-payment vendor=ACME amount=30000",
                                           user=ALICE, channel=PAYMENTS)
        acks.append(reply.elapsed)
        assert reply.status == 200 and faults.is_down, ref
    for ref in ("R-1", "R-2"):
        # Slack's reason modal cannot open while Slack is down; approvers decide from the
        # command line (`baton decide`), and Slack's messages catch up when it is back.
        baton.engine.decide(ref, "bob", "approve", reason="approved during the outage")
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - went_down)))
    figures.note("slowest_ack_during_outage_s", round(max(acks), 3))
    faults.up()
    baton.settle(timeout=90)

    with baton.engine.db.read() as s:
        left = s.exec(select(SlackOutbox).where(col(SlackOutbox.status) != "sent")).all()
        sent = len(s.exec(select(SlackOutbox.id).where(SlackOutbox.status == "sent")).all())
    assert [(o.method, o.status, o.last_error) for o in left
            if o.status != "superseded"] == []
    cards = [m for m in baton.channel() if m.text.startswith("R-")]
    assert sorted(m.text.split()[0] for m in cards) == ["R-1", "R-2", "R-3", "R-4", "R-5"]
    for card in cards:
        thread = baton.thread(card)
        ids = outbox_ids(thread)
        assert ids == sorted(ids) and len(ids) == len(set(ids)), (card.text, ids)  # in order, once
    calls = list(baton.slack.calls)
    figures.add("requests_sent", 5)  # slash commands; the two decisions went through the CLI
    figures.add("slack_calls", len(calls))
    figures.add("faults_injected", sum(1 for c in calls if c.fault is not None))
    figures.add("messages_delivered", sent)
    figures.note("outage_s", OUTAGE)
    figures.note("slowest_ack_during_outage_s", round(max(acks), 3))
    for ref in ("R-1", "R-2"):
        decided = baton.slack.workspace.message(PAYMENTS, gates[ref].ts)
        approved = "*Approved* by <@U0BOB0001>" in json.dumps(decided.blocks)
        figures.add("decisions_recorded")
        figures.add("decisions_lost", 0 if approved else 1)
        assert approved
        assert baton.engine.get_run(ref).status == "succeeded"
