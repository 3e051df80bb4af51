"""Slack is answered before the decision's work is done: a click and a modal's submission
are acknowledged while the run they resume is still busy with its action. Causal, not
timed: the action is held until the answers have arrived, so an ack path that waited for
the decision, or for what follows it, would never answer and the test would fail.
(How long an ack takes is measured by bench/click_ack.py, never asserted here.)"""

from __future__ import annotations

import sys

import pytest
from sqlmodel import select

from storage.models import Run
from tests.bot.conftest import Baton
from tests.figures import Figures
from tests.reliability.conftest import APPROVERS, EVERYONE, PAYMENTS, wait_until

pytestmark = pytest.mark.reliability(
    item="2", promise="Each gate takes exactly one decision (per quorum seat), whatever the double "
                      "clicks, concurrent approvers or Slack retries; each person is told what "
                      "happened")


def test_a_click_is_answered_while_the_run_it_resumes_is_still_at_work(
        reliable: Baton, figures: Figures) -> None:
    baton = reliable
    requester = EVERYONE[0]
    approver = next(user for user in APPROVERS if user != requester)
    assert baton.driver.slash_command("run held-payment amount=100", user=requester,
                                      channel=PAYMENTS).status == 200
    baton.settle()
    agents = sys.modules["reliabilityagents"]  # Baton loaded it, in this process
    agents.HELD_STARTED.clear()
    agents.HELD_RELEASE.clear()
    try:
        clicked = baton.driver.click(user=approver, action_id="gate.decide.approve",
                                     channel=PAYMENTS, ts=baton.gate_message().ts)
        assert clicked.status == 200
        # the decision was taken and the run went on to its action, which is still held:
        # the answer above did not wait for either
        wait_until(agents.HELD_STARTED.is_set, timeout=30, what="the action to begin")
        assert not agents.HELD_RELEASE.is_set()
        again = baton.driver.replay(clicked)  # a double click, while the action still runs
        assert again.status == 200
    finally:
        agents.HELD_RELEASE.set()
    baton.settle()
    figures.add("requests_sent", 3)
    figures.add("decisions_recorded", 1)
    with baton.engine.db.read() as s:
        assert s.exec(select(Run)).one().status == "succeeded"
