"""End-to-end harness: the real Baton service (engine, timers, event pump, outbox, bolt app)
served over HTTP on loopback, against the Slack emulator; requests are signed the way Slack
signs them. Nothing of Baton's is patched."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.service import BatonService
from orchestrator.clock import Clock, SystemClock
from orchestrator.loader import load_org
from sandbox import Driver, EmulatorServer, LoopbackServer, workspace_from_org
from sandbox.records import Message
from tests.conftest import EXAMPLE_FLOWS, WALL_TRIGGER_TTL, make_settings

ALICE, BOB, CAROL, DAVE, ERIN, FRANK = (
    "U0ALICE01", "U0BOB0001", "U0CAROL01", "U0DAVE001", "U0ERIN001", "U0FRANK01")
PAYMENTS = "C0PAYMENTS1"
ORG = load_org(EXAMPLE_FLOWS / "org.yaml")


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        yield server


@dataclass
class Baton:
    service: BatonService
    slack: EmulatorServer
    driver: Driver
    url: str

    @property
    def engine(self):  # type: ignore[no-untyped-def]
        return self.service.engine

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every event is turned into Slack calls and every call is made."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.service.busy:  # a listener or a run is still working
                time.sleep(0.01)
                continue
            self.service.pump.dispatcher.deliver_pending()
            if self.service.outbox.drain(timeout=max(0.1, deadline - time.monotonic())):
                from sqlmodel import col, select

                from bot.outbox import OPEN
                from storage.models import Event, Run, SlackOutbox
                with self.engine.db.read() as s:
                    pending = s.exec(select(Event.id).where(col(Event.delivered_at).is_(None))).first()
                    running = s.exec(select(Run.id).where(Run.status == "running")).first()
                    # the event pump's own thread may have turned an event into calls after
                    # the drain above looked (on PostgreSQL our deliver_pending skips the
                    # event it holds locked), so look at the outbox once more
                    unsent = s.exec(select(SlackOutbox.id).where(col(SlackOutbox.status).in_(OPEN))).first()
                if pending is None and running is None and unsent is None and not self.service.busy:
                    return
            time.sleep(0.02)
        raise AssertionError("Baton did not settle")

    def modal(self, user: str) -> Any:
        """The modal `user` has open, once the bot has opened it (after acknowledging)."""
        return self.slack.workspace.wait_for(lambda ws: ws.modal_stack(user), timeout=5)[-1]

    def submit(self, user: str, values: dict[str, Any]) -> Any:
        self.modal(user)
        return self.driver.submit_view(user=user, values=values)

    def channel(self, channel: str = PAYMENTS) -> list[Message]:
        return self.slack.workspace.messages(channel, include_replies=False)

    def thread(self, parent: Message) -> list[Message]:
        return self.slack.workspace.replies(parent.channel, parent.ts)[1:]

    def run_card(self, ref: str = "R-1", channel: str = PAYMENTS) -> Message:
        """The run's card, once it is in the channel (messages arrive asynchronously)."""
        return self.slack.workspace.wait_for(lambda ws: next(
            (m for m in ws.messages(channel, include_replies=False) if m.text.startswith(ref)),
            None), timeout=5)

    def gate_message(self, ref: str = "R-1", channel: str = PAYMENTS) -> Message:
        """The gate request in the run card's thread (and nowhere else)."""
        card = self.run_card(ref, channel)

        def find(ws: Any) -> Message | None:
            return next((m for m in ws.replies(card.channel, card.ts)[1:]
                         if any("gate `" in json.dumps(b) for b in m.blocks)), None)

        return self.slack.workspace.wait_for(find, timeout=5)

    def dms(self, user: str) -> list[Message]:
        channel = self.slack.workspace.dm_of(user)
        return self.slack.workspace.messages(channel.id) if channel else []

    def ephemerals(self, user: str) -> list[Any]:
        return self.slack.workspace.ephemerals(user)


@pytest.fixture
def make_baton(emulator: EmulatorServer, database_url: str, ledger: Callable
               ) -> Iterator[Callable[..., Baton]]:
    started: list[tuple[BatonService, LoopbackServer, Driver]] = []

    def build(flows: Path = EXAMPLE_FLOWS, clock: Clock | None = None,
              slack_timeout: float = 10.0, org: Path | None = None,
              home_every: float = 0.05, **extra: object) -> Baton:
        """Baton over `flows`; `org` (default: the examples' org file) also makes the Slack
        workspace's people and channels; `extra` are more settings.

        `slack_timeout` is the product's 10 s: the emulator runs on wall time, and a call
        that a loaded machine answers late would otherwise be in doubt, waiting for a
        FakeClock that never moves on its own. Tests of timeouts pass their own.
        `home_every`: the pace of one person's App Home publishes, a second in the product
        (bot.pace); tests wait a twentieth of one, as they poll."""
        workspace = workspace_from_org(ORG if org is None else load_org(org), trigger_ttl=WALL_TRIGGER_TTL)
        emulator.reset(workspace)
        if org is not None:
            extra["BATON_ORG"] = org
        settings = make_settings(
            database_url, flows, **extra,
            SLACK_BOT_TOKEN=workspace.app.bot_token,
            SLACK_SIGNING_SECRET=workspace.app.signing_secret,
            SLACK_API_URL=emulator.api_url)
        service = BatonService(settings, clock=clock or SystemClock(), poll=0.05,
                               slack_timeout=slack_timeout, home_every=home_every)
        service.start()
        server = LoopbackServer(service.http_app()).start()
        driver = emulator.driver(f"{server.url}/slack/events")
        started.append((service, server, driver))
        return Baton(service, emulator, driver, server.url)

    yield build
    for service, server, driver in started:
        driver.close()
        server.stop()
        service.stop()


@pytest.fixture
def baton(make_baton: Callable[..., Baton]) -> Baton:
    return make_baton()


def dump(baton: Baton) -> str:
    """What Baton queued and what Slack saw, for a failing test's message."""
    from sqlmodel import select

    from storage.models import Event, SlackOutbox
    lines = []
    with baton.engine.db.read() as s:
        for e in s.exec(select(Event)):
            lines.append(f"event {e.id} {e.kind} delivered={e.delivered_at is not None} {e.last_error}")
        for o in s.exec(select(SlackOutbox)):
            lines.append(f"outbox {o.id} {o.method} {o.status} {o.last_error}")
    for call in baton.slack.calls:
        lines.append(f"call {call.method} {call.status} {str(call.response)[:200]}")
    return "\n".join(lines)
