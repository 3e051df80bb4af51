"""Socket Mode envelopes redelivered (issue 8, item 4): Slack resends an envelope it did not
see acknowledged, sometimes while the first copy is still being handled. The real
`SocketModeHandler` of the real app gets each envelope twice, at the same moment, and once
more as a marked retry; Baton must act once and say things once.

The WebSocket is the edge we do not own: a small client object stands in for it and
records the acknowledgements the handler sends back. Everything past it is real: the SDK
parses the envelope, bolt dispatches it, Baton's listeners store, acknowledge and work.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from sqlmodel import select

from bot.socket_mode import BatonSocketModeHandler as SocketModeHandler
from sandbox import payloads
from storage.models import Decision, Run, SlackInbox
from tests.bot.conftest import Baton
from tests.figures import Figures
from tests.reliability.conftest import ALICE, BOB, PAYMENTS, surface_problems

pytestmark = pytest.mark.reliability(
    item="4", promise="Socket Mode envelopes redelivered are processed once: one run, one "
                      "decision, one reply")


class Socket:
    """Where the handler sends its acknowledgements (the WebSocket, in production)."""

    def __init__(self) -> None:
        self.logger = logging.getLogger("tests.socket")
        self.acks: list[SocketModeResponse] = []
        self._lock = threading.Lock()

    def send_socket_mode_response(self, response: SocketModeResponse | dict[str, Any]) -> None:
        with self._lock:
            self.acks.append(response if isinstance(response, SocketModeResponse)
                             else SocketModeResponse(**response))

    def acked(self, envelope_id: str) -> list[SocketModeResponse]:
        return [a for a in self.acks if a.envelope_id == envelope_id]


@pytest.fixture
def socket_mode(reliable: Baton) -> Iterator[tuple[Baton, SocketModeHandler, Socket]]:
    handler = SocketModeHandler(reliable.service.app, app_token="xapp-1-sandbox")
    try:
        yield reliable, handler, Socket()
    finally:
        handler.client.close()  # its threads; it never connected


def envelope(kind: str, payload: dict[str, Any], *, retry: int | None = None,
             envelope_id: str | None = None) -> dict[str, Any]:
    """An envelope as it arrives on the socket."""
    found: dict[str, Any] = {"envelope_id": envelope_id or str(uuid.uuid4()), "type": kind,
                             "payload": payload, "accepts_response_payload": kind != "events_api"}
    if retry is not None:
        found.update(retry_attempt=retry, retry_reason="timeout")
    return found


def deliver(handler: SocketModeHandler, socket: Socket, raw: dict[str, Any], copies: int,
            figures: Figures) -> None:
    """The same envelope `copies` times at once, each parsed by the SDK as the socket would."""
    def one() -> None:
        request = SocketModeRequest.from_dict(json.loads(json.dumps(raw)))
        assert request is not None
        handler.handle(socket, request)  # type: ignore[arg-type]

    with ThreadPoolExecutor(copies) as pool:
        for future in [pool.submit(one) for _ in range(copies)]:
            future.result()
    figures.add("requests_sent", copies)
    figures.add("faults_injected", copies - 1)


def redelivered(handler: SocketModeHandler, socket: Socket, kind: str, payload: dict[str, Any],
                figures: Figures) -> None:
    """Twice at the same moment, then as Slack's marked retry under a new envelope id."""
    first = envelope(kind, payload)
    deliver(handler, socket, first, 2, figures)
    retry = envelope(kind, payload, retry=1)
    deliver(handler, socket, retry, 1, figures)
    figures.add("faults_injected")
    for raw in (first, retry):  # every copy is acknowledged, or Slack would keep resending
        assert socket.acked(raw["envelope_id"]), f"{kind} envelope not acknowledged"
    assert len(socket.acked(first["envelope_id"])) == 2


def test_a_redelivered_slash_command_starts_one_run(
        socket_mode: tuple[Baton, SocketModeHandler, Socket], figures: Figures) -> None:
    baton, handler, socket = socket_mode
    ws = baton.slack.workspace
    alice, channel = ws.user(ALICE), ws.channel(PAYMENTS)
    fields = payloads.slash_command(
        ws, user=alice, channel=channel, command="/baton", text="run one-approval amount=100",
        response_url=f"{baton.slack.url}/response/{ws.issue_response_url(alice.id, channel.id)}",
        trigger_id=ws.issue_trigger(alice.id))
    redelivered(handler, socket, "slash_commands", fields, figures)
    answers = [json.dumps(a.payload or {}) for a in socket.acks]
    # the copy that was handled is acknowledged with the reply; the others say they are copies
    assert len([a for a in answers if "Starting" in a]) == 1, answers
    assert len([a for a in answers if "already has this very request" in a]) == 2, answers
    baton.settle()
    with baton.engine.db.read() as s:
        assert len(s.exec(select(Run)).all()) == 1
        assert len(s.exec(select(SlackInbox)).all()) == 1
    assert len([m for m in baton.channel() if m.text.startswith("R-1")]) == 1
    assert surface_problems(baton) == []


def test_a_redelivered_dm_is_answered_once(
        socket_mode: tuple[Baton, SocketModeHandler, Socket], figures: Figures) -> None:
    baton, handler, socket = socket_mode
    ws = baton.slack.workspace
    dm = ws.open_dm(ALICE)
    posted = ws.post_message(dm.id, text="run one-approval amount=100", author=ALICE)
    event = {"type": "message", "user": ALICE, "text": posted.text, "ts": posted.ts,
             "channel": dm.id, "event_ts": posted.ts, "channel_type": "im", "team": ws.team.id}
    body = payloads.event_callback(ws, event, event_id=ws.new_id("Ev"), event_time=int(ws.clock()))
    redelivered(handler, socket, "events_api", body, figures)
    baton.settle()
    with baton.engine.db.read() as s:
        assert len(s.exec(select(Run)).all()) == 1
    said = [m.text for m in baton.dms(ALICE) if m.user != ALICE and not m.thread_ts]
    # one answer, one run card (a run started in a DM lives there)
    assert len(said) == 2 and said[0].startswith("Starting") and said[1].startswith("R-1"), said
    assert surface_problems(baton) == []


def test_a_redelivered_click_records_one_decision(
        socket_mode: tuple[Baton, SocketModeHandler, Socket], figures: Figures, ledger: Any) -> None:
    baton, handler, socket = socket_mode
    baton.driver.slash_command("run one-approval amount=100", user=ALICE, channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    signed = baton.driver.prepare_click(user=BOB, action_id="gate.decide.approve", channel=PAYMENTS,
                                        ts=gate.ts)
    click = json.loads(parse_qs(signed.body.decode())["payload"][0])
    redelivered(handler, socket, "interactive", click, figures)
    baton.settle()
    with baton.engine.db.read() as s:
        decisions = s.exec(select(Decision)).all()
    assert [(d.decider, d.option) for d in decisions] == [("bob", "approve")]
    assert baton.engine.get_run("R-1").status == "succeeded"
    assert len(ledger()) == 1
    assert baton.ephemerals(BOB) == []  # the decider is told by the gate message, once
    decided = json.dumps(baton.slack.workspace.message(PAYMENTS, gate.ts).blocks)
    assert "*Approved* by <@U0BOB0001>" in decided
    figures.add("decisions_recorded")
    assert surface_problems(baton) == []


def test_a_click_seen_over_http_and_then_the_socket_counts_once(
        socket_mode: tuple[Baton, SocketModeHandler, Socket], figures: Figures) -> None:
    """The same interaction over both transports (an app moved from HTTP to Socket Mode
    while Slack still held a copy, or a captured request replayed down the other door): its
    key is Slack's id for it, the same on both, so it counts once and is answered once."""
    baton, handler, socket = socket_mode
    baton.driver.slash_command("run two-approvals amount=100", user=ALICE, channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    signed = baton.driver.prepare_click(user=BOB, action_id="gate.decide.approve", channel=PAYMENTS,
                                        ts=gate.ts)
    assert baton.driver.send(signed).status == 200
    baton.settle()
    told = len(baton.ephemerals(BOB))
    click = json.loads(parse_qs(signed.body.decode())["payload"][0])
    redelivered(handler, socket, "interactive", click, figures)
    baton.settle()
    with baton.engine.db.read() as s:
        assert [d.decider for d in s.exec(select(Decision))] == ["bob"]
    assert len(baton.ephemerals(BOB)) == told == 1
    assert baton.engine.get_run("R-1").status == "waiting"


def test_an_envelope_with_invalid_utf8_is_handled_like_any_other(
        socket_mode: tuple[Baton, SocketModeHandler, Socket], figures: Figures) -> None:
    """JSON may carry lone surrogates; the payload is made storable before bolt sees it, as on
    the HTTP endpoint (PostgreSQL's jsonb would refuse `\\udcff` and the DM would be lost)."""
    baton, handler, socket = socket_mode
    ws = baton.slack.workspace
    dm = ws.open_dm(ALICE)
    posted = ws.post_message(dm.id, text="run one-approval amount=100", author=ALICE)
    text = posted.text + " \udcff"
    event = {"type": "message", "user": ALICE, "text": text, "ts": posted.ts,
             "channel": dm.id, "event_ts": posted.ts, "channel_type": "im", "team": ws.team.id}
    body = payloads.event_callback(ws, event, event_id=ws.new_id("Ev"), event_time=int(ws.clock()))
    deliver(handler, socket, envelope("events_api", body), 1, figures)
    baton.settle()
    with baton.engine.db.read() as s:
        (stored,) = s.exec(select(SlackInbox)).all()
    assert stored.payload["event"]["text"].endswith(" \ufffd")
    said = [m.text for m in baton.dms(ALICE) if m.user != ALICE and not m.thread_ts]
    assert said, "the DM was not answered"
    assert surface_problems(baton) == []
