"""Crash at every step: a vendor payment through Slack, with `baton serve --http` killed by
SIGKILL at a step boundary or inside a write, restarted on the same database, and the
payment finished through Slack. Whatever the point:

- no decision is lost (an acknowledged decision is recorded, once);
- the action runs at most once (a person confirms it when it was in flight);
- every waiting gate can still be decided, and its escalation timer is still there;
- every message reaches Slack exactly once.

CI runs one kill per point; `BATON_CRASH_MATRIX=full` kills at every occurrence of each.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from orchestrator.readers.export import verify_run
from sandbox import Driver, EmulatorServer, workspace_from_org
from sandbox.records import Message
from storage.engine import Database
from storage.models import Action, Decision, Event, Gate, Run, SlackInbox, SlackOutbox, Timer
from tests.bot.conftest import ALICE, BOB, ORG, PAYMENTS
from tests.bot.processes import Replica, eventually, serve_env
from tests.conftest import EXAMPLE_FLOWS
from tests.figures import Figures

ERIN = "U0ERIN001"
CI_POINTS = [
    ("signal.stored", 1), ("agents.done", 1), ("step.committed", 2), ("gate.opened", 1),
    ("outbox.written", 2), ("message.sent", 2), ("decision.recorded", 1),
    ("decision.committed", 1), ("action.started", 1), ("action.done", 1),
    # the reason modal's decision stored and acknowledged, not yet begun (the first one, the
    # slash command's run, may die before its answer leaves: a different story for Slack)
    ("request.accepted", 2),
]
FULL_POINTS = sorted({*CI_POINTS, *[("step.committed", n) for n in range(1, 8)],
                      *[("outbox.written", n) for n in range(1, 7)],
                      *[("message.sent", n) for n in range(1, 9)],
                      *[("signal.stored", n) for n in range(1, 4)]})
POINTS = FULL_POINTS if os.environ.get("BATON_CRASH_MATRIX") == "full" else CI_POINTS


class Scenario:
    """One Baton at a time, restarted when it dies, and Slack as people see it."""

    def __init__(self, emulator: EmulatorServer, database_url: str, tmp: Path, crash_at: str) -> None:
        self.emulator = emulator
        self.ws = emulator.workspace
        self.tmp = tmp
        self.ledger = tmp / "ledger.jsonl"
        self.env = serve_env(database_url, EXAMPLE_FLOWS, EXAMPLE_FLOWS / "org.yaml",
                             emulator.api_url, self.ws, self.ledger)
        self.db = Database(database_url)
        self.restarts = 0
        self.sent = 0  # requests people sent to Baton through Slack
        self.baton = self._start({"BATON_CRASH_AT": crash_at})

    def _start(self, extra: dict[str, str]) -> Replica:
        replica = Replica({**self.env, **extra}, self.tmp, f"baton-{self.restarts}")
        replica.wait_ready()
        self.driver: Driver = self.emulator.driver(f"{replica.url}/slack/events")
        return replica

    def survive(self) -> None:
        """If Baton died at its crash point, start it again (without one)."""
        if self.baton.process.poll() is not None:
            self.baton.stop()
            self.restarts += 1
            self.baton = self._start({})

    def after_error(self) -> None:
        """Slack showed an error: Baton may still be on its way down, so let it finish dying
        before deciding whether it needs a restart."""
        with contextlib.suppress(subprocess.TimeoutExpired):  # alive: some other error
            self.baton.process.wait(timeout=5)
        self.survive()

    def until(self, check: Any, timeout: float = 30.0) -> Any:
        def alive_or_restarted() -> Any:
            self.survive()
            return check()

        return eventually(alive_or_restarted, timeout)

    def card(self) -> Message:
        return self.until(lambda: next((m for m in self.ws.messages(PAYMENTS, include_replies=False)
                                        if m.text.startswith("R-1")), None))

    def thread(self) -> list[Message]:
        card = self.card()
        return self.ws.replies(PAYMENTS, card.ts)[1:]

    def gate_message(self, title: str) -> Message:
        return self.until(lambda: next((m for m in self.thread() if title in json.dumps(m.blocks)
                                        and any(b["type"] == "actions" for b in m.blocks)), None))

    def decided(self, title: str) -> bool:
        """The request shows a decision (its buttons are gone)."""
        return any(title in json.dumps(m.blocks) and not any(b["type"] == "actions" for b in m.blocks)
                   for m in self.thread())

    def decide(self, user: str, title: str, action_id: str, reason: str) -> None:
        """Click, give the reason in the modal, submit; if Slack showed an error (Baton died
        before answering), look at the thread first, as a person would: decide again only
        if the request still asks."""
        for _ in range(3):
            shown = self.until(lambda: self.decided(title) or self.gate_message(title))
            if shown is True:
                return
            gate = shown
            self.sent += 1
            try:
                self.driver.click(user=user, action_id=action_id, channel=PAYMENTS, ts=gate.ts)
            except httpx.TransportError:
                self.after_error()
                continue
            try:
                self.ws.wait_for(lambda ws: ws.modal_stack(user), timeout=5)
            except Exception:
                self.survive()
                continue
            self.sent += 1
            try:
                response = self.driver.submit_view(user=user, values={"reason": reason})
            except httpx.TransportError:  # killed before the answer left: Slack shows an error
                self.after_error()
                continue
            if response.status == 200:
                return
            self.after_error()
        raise AssertionError("could not decide")

    def settled(self) -> bool:
        with self.db.read() as s:
            run = s.exec(select(Run)).first()
            busy = (s.exec(select(Event.id).where(col(Event.delivered_at).is_(None))).first()
                    or s.exec(select(SlackOutbox.id).where(
                        col(SlackOutbox.status).in_(("pending", "sending", "unsure")))).first()
                    or s.exec(select(SlackInbox.id).where(SlackInbox.status == "pending")).first())
        return run is not None and run.status in ("succeeded", "rejected", "failed") and not busy

    def payments(self) -> list[dict]:
        if not self.ledger.exists():
            return []
        return [json.loads(line) for line in self.ledger.read_text().splitlines() if line]

    def close(self) -> None:
        self.baton.stop()
        self.db.dispose()


@pytest.fixture
def scenario_for(emulator: EmulatorServer, database_url: str, tmp_path: Path
                 ) -> Iterator[Any]:
    made: list[Scenario] = []

    def make(crash_at: str) -> Scenario:
        emulator.reset(workspace_from_org(ORG))
        from storage.migrate import ensure_schema

        db = Database(database_url)
        ensure_schema(db)
        db.dispose()
        made.append(Scenario(emulator, database_url, tmp_path, crash_at))
        return made[-1]

    yield make
    for scenario in made:
        scenario.close()


@pytest.mark.reliability(item="1", promise="A crash at any step loses nothing: no decision lost, "
                         "no action run twice, every gate still decidable with its timers, every "
                         "message delivered once")
@pytest.mark.parametrize(("point", "nth"), POINTS, ids=[f"{p}:{n}" for p, n in POINTS])
def test_a_crash_at_any_point_loses_nothing(scenario_for: Any, point: str, nth: int,
                                            figures: Figures) -> None:
    s: Scenario = scenario_for(f"{point}:{nth}")
    reply = s.driver.slash_command("run vendor-payment vendor=ACME amount=20000", user=ALICE,
                                   channel=PAYMENTS)
    assert reply.status == 200  # acknowledged: from here on Baton owes the run
    s.gate_message("Approve vendor payment?")
    with s.db.read() as session:  # the waiting gate's escalation timer survived any restart
        gate = session.exec(select(Gate).where(Gate.status == "open")).one()
        timers = session.exec(select(Timer).where(Timer.gate_id == gate.id,
                                                  Timer.status == "pending")).all()
    assert {t.kind for t in timers} == {"escalate", "remind"}
    assert all(t.token == gate.timer_token for t in timers)

    s.decide(BOB, "Approve vendor payment?", "gate.decide.approve", "Invoice matches PO 4471")
    # An action in flight when Baton died is never run again by itself: the admin looks at
    # the bank and says whether it went through.
    unknown = s.until(lambda: s.settled() or next(
        (m for m in s.thread() if "Did &#39;pay&#39; run?" in json.dumps(m.blocks)
         or "Did 'pay' run?" in json.dumps(m.blocks)), None), timeout=45)
    if unknown is not True:
        went_through = bool(s.payments())
        s.decide(ERIN, "Did 'pay' run?", "gate.decide." + ("done" if went_through else "retry"),
                 "Checked in the bank portal")
    s.until(s.settled, timeout=60)

    with s.db.read() as session:
        run = session.exec(select(Run)).one()
        decisions = session.exec(select(Decision).where(Decision.decider == "bob")).all()
        actions = session.exec(select(Action)).all()
        # every request Slack had an answer for was finished, by its own finisher, whoever did it
        unfinished = [(r.kind, r.status, r.error) for r in session.exec(select(SlackInbox))
                      if r.status != "done"]
    assert unfinished == []
    figures.add("faults_injected", s.restarts)  # each restart followed a SIGKILL
    figures.add("requests_sent", 1 + s.sent)  # the slash command, clicks and modal submissions
    figures.add("slack_calls", len(s.emulator.calls))
    figures.add("decisions_recorded", len(decisions))
    figures.add("decisions_lost", 0 if decisions else 1)
    figures.note("crash_at", f"{point}:{nth}")
    assert run.status == "succeeded", run.reason
    assert [(d.option, d.reason) for d in decisions] == [("approve", "Invoice matches PO 4471")]
    assert len(s.payments()) == 1 and len(actions) == 1  # paid exactly once
    assert verify_run(s.db, run) is None  # the trace is whole
    # every message exactly once: one card, one gate request, no repeated thread message
    cards = [m for m in s.ws.messages(PAYMENTS, include_replies=False) if m.text.startswith("R-1")]
    assert len(cards) == 1
    ids = [(m.metadata or {}).get("event_payload", {}).get("outbox_id") for m in s.thread()]
    assert len(ids) == len(set(ids)), [m.text for m in s.thread()]
    requests = [m for m in s.thread() if "Approve vendor payment?" in json.dumps(m.blocks)]
    assert len(requests) == 1 and "*Approved* by <@U0BOB0001>" in json.dumps(requests[0].blocks)
    if point != "message.sent":  # a kill after Slack took a message is the only doubt there is
        assert s.restarts == 1, "the crash point was never reached"
