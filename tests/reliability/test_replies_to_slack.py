"""Baton talks only to Slack (issue 21, item 5), through the real endpoint of the real
service against the Slack emulator:

- a `response_url` (in a click, a slash command or a modal's private_metadata) that is not
  Slack's gets nothing from Baton: no request reaches its host, the reply goes by
  `chat.postEphemeral`, and the refusal is logged;
- a `response_url` that expired (404, 410) fails that reply alone, which goes by
  `chat.postEphemeral` (or a DM where that cannot reach the person), and later replies to the
  same person are never held behind it;
- retries are bounded: a call that can never succeed ends `failed`, seen in `/metrics`, the
  log and `baton status`, and its lane moves on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from structlog.testing import capture_logs

from orchestrator.clock import FakeClock
from sandbox import LoopbackServer
from sandbox.driver import Delivery, SlackRequest
from storage.models import SlackOutbox
from tests.bot.conftest import Baton
from tests.figures import Figures
from tests.reliability.conftest import (
    ALICE,
    ERIN,
    FLOWS,
    GRACE,
    MODULES,
    ORG_FILE,
    PAYMENTS,
    wait_until,
)

pytestmark = pytest.mark.reliability(
    item="10", promise="Baton sends replies only to Slack's own origins; an expired response_url "
                         "fails that reply alone, which reaches the person another way; retries are "
                         "bounded and a call that cannot succeed ends visibly failed")

FORM = "application/x-www-form-urlencoded"


class Elsewhere:
    """A host that is not Slack's, recording whatever reaches it."""

    def __init__(self) -> None:
        self.hits: list[dict[str, Any]] = []

        async def anything(request: Request) -> JSONResponse:
            self.hits.append({"path": request.url.path, "body": (await request.body()).decode()})
            return JSONResponse({"ok": True})

        self.server = LoopbackServer(Starlette(routes=[
            Route("/{path:path}", anything, methods=["GET", "POST", "PUT"])])).start()

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def elsewhere() -> Iterator[Elsewhere]:
    host = Elsewhere()
    try:
        yield host
    finally:
        host.server.stop()


def rewritten(baton: Baton, request: SlackRequest, **changes: Any) -> Delivery:
    """`request`'s payload with `changes`, signed (by whoever holds the signing secret)."""
    payload = json.loads(dict(parse_qsl(request.body.decode()))["payload"])
    payload.update(changes)
    return baton.driver.post(urlencode({"payload": json.dumps(payload)}).encode(), FORM)


def outbox(baton: Baton) -> list[SlackOutbox]:
    with baton.engine.db.read() as s:
        return list(s.exec(select(SlackOutbox).order_by(col(SlackOutbox.id))))


def test_a_response_url_that_is_not_slacks_gets_nothing(reliable: Baton, elsewhere: Elsewhere,
                                                        figures: Figures) -> None:
    baton = reliable
    baton.driver.slash_command("run one-approval amount=100", user=ALICE, channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    slack = baton.slack.url
    host = elsewhere.url.removeprefix("http://")
    urls = [
        f"{elsewhere.url}/hooks",                                  # another host
        f"http://{host.split(':')[0]}:{host.split(':')[1]}/response/x",
        f"{slack.replace('127.0.0.1', 'localhost')}/response/x",   # the same machine, not the origin
        f"http://x@{host}/response/x",                             # user info
        f"{slack}@{host}/response/x",                              # Slack's origin as user info
        f"http://{host}\\@{slack.removeprefix('http://')}/x",      # parsers disagree on backslashes
        f"https://hooks.slack.com.{host}/x",                       # Slack's name as a prefix
        "http://hooks.slack.com/commands/T1/2/x",                  # not https
        "https://hooks.slack.com:8443/commands/T1/2/x",            # another port
        "https://xn--hooks-slack.com/commands/T1/2/x",             # not valid IDNA: read, it raised
        "https://xn--80ak6aa92e.com/x",                            # valid IDNA (a look-alike name)
        "https://hooks.slack.com./commands/T1/2/x",                # the same name, fully qualified
        "javascript:alert(1)", "//hooks.slack.com/x", "", " ", 42, ["x"], {"u": 1},
    ]
    with capture_logs() as logs:
        for url in urls:
            click = baton.driver.prepare_click(user=GRACE, action_id="gate.decide.approve",
                                               channel=PAYMENTS, ts=gate.ts)
            assert rewritten(baton, click, response_url=url).status == 200
            figures.add("requests_sent")
            figures.add("faults_injected")
        # a modal's private_metadata carries a response_url too
        submission = {"type": "view_submission", "user": {"id": GRACE}, "trigger_id": "t-meta",
                      "view": {"id": "V9", "type": "modal", "callback_id": "gate.reason",
                               "private_metadata": json.dumps({"g": 1, "o": "approve", "c": PAYMENTS,
                                                               "r": f"{elsewhere.url}/meta"}),
                               "state": {"values": {}}}}
        assert baton.driver.post(urlencode({"payload": json.dumps(submission)}).encode(),
                                 FORM).status == 200
        figures.add("requests_sent")
        figures.add("faults_injected")
        baton.settle()
    assert elsewhere.hits == []
    refusals = [e for e in logs if e["event"] == "response_url_refused"]
    assert len(refusals) >= len([u for u in urls if u not in ("", None)]) - 3
    figures.add("refusals", len(refusals))
    told = baton.ephemerals(GRACE)  # each refusal reached Grace, by postEphemeral
    assert len(told) == len(urls) + 1 and all(e.text.startswith(":no_entry_sign:") for e in told)
    assert not [c for c in baton.slack.calls if c.method == "response_url"
                and c.args.get("text", "").startswith("Error")]


def test_a_command_s_response_url_that_is_not_slacks_gets_nothing(
        reliable: Baton, elsewhere: Elsewhere, figures: Figures) -> None:
    """A follow-up of a slash command (a run refused after the acknowledgement, since Baton
    is halted) answers by postEphemeral, not at the forged URL."""
    baton = reliable
    baton.driver.slash_command("halt", user=ERIN, channel=PAYMENTS)
    ws = baton.slack.workspace
    fields = {"command": "/baton", "text": "run one-approval amount=100", "user_id": ALICE,
              "channel_id": PAYMENTS, "team_id": ws.team.id, "trigger_id": ws.issue_trigger(ALICE),
              "response_url": f"{elsewhere.url}/commands"}
    assert baton.driver.post(urlencode(fields).encode(), FORM).status == 200
    figures.add("requests_sent", 2)
    figures.add("faults_injected")
    baton.settle()
    assert elsewhere.hits == []
    assert any("halted" in e.text for e in baton.ephemerals(ALICE))


def test_an_expired_response_url_fails_that_reply_alone(reliable: Baton, figures: Figures) -> None:
    with capture_logs() as logs:
        an_expired_response_url_fails_that_reply_alone(reliable, figures)
    rerouted = [e for e in logs if e["event"] == "slack_call_rerouted"]
    assert [(e["method"], e["instead"]) for e in rerouted] == \
        [("response_url", "chat.postEphemeral")] * 2
    assert "404" in rerouted[0]["why"] and "410" in rerouted[1]["why"]


def an_expired_response_url_fails_that_reply_alone(baton: Baton, figures: Figures) -> None:
    baton.driver.slash_command("run one-approval amount=100", user=ALICE, channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    expired = f"{baton.slack.url}/response/T0/1/expired-long-ago"
    click = baton.driver.prepare_click(user=GRACE, action_id="gate.decide.approve",
                                       channel=PAYMENTS, ts=gate.ts)
    rewritten(baton, click, response_url=expired)
    baton.settle()
    baton.slack.faults.next("response_url", status=410)  # Slack's "gone", as some proxies say
    second = baton.driver.prepare_click(user=GRACE, action_id="gate.decide.reject",
                                        channel=PAYMENTS, ts=gate.ts)
    baton.driver.send(second)
    # the same person again, with a good URL: answered there
    baton.settle()
    third = baton.driver.click(user=GRACE, action_id="gate.decide.approve", channel=PAYMENTS,
                               ts=gate.ts)
    figures.add("requests_sent", 3)
    figures.add("faults_injected", 2)
    assert third.status == 200
    baton.settle()
    answered = [c for c in baton.slack.calls if c.method == "response_url"]
    assert [c.status for c in answered] == [404, 410, 200]
    ephemeral = [c for c in baton.slack.calls if c.method == "chat.postEphemeral"]
    assert len(ephemeral) == 2 and all(c.ok for c in ephemeral)
    assert len(baton.ephemerals(GRACE)) == 3
    rows = outbox(baton)
    assert [r.status for r in rows if r.payload.get("user") == GRACE or "url" in r.payload] \
        == ["sent"] * 3


def test_a_reply_that_cannot_go_ephemeral_goes_by_dm(reliable: Baton, figures: Figures) -> None:
    """An expired URL from a conversation Baton cannot post in: the reply becomes a DM."""
    baton = reliable
    baton.driver.slash_command("run one-approval amount=100", user=ALICE, channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    click = baton.driver.prepare_click(user=GRACE, action_id="gate.decide.approve",
                                       channel=PAYMENTS, ts=gate.ts)
    rewritten(baton, click, response_url=f"{baton.slack.url}/response/T0/1/gone",
              channel={"id": "C0GONE0001"}, container={"type": "message",
                                                      "channel_id": "C0GONE0001"})
    figures.add("requests_sent")
    figures.add("faults_injected")
    baton.settle()
    (dm,) = [m for m in baton.dms(GRACE) if "not an approver" in m.text]
    assert dm.text
    methods = [(c.method, c.ok) for c in baton.slack.calls
               if c.method in ("response_url", "chat.postEphemeral", "chat.postMessage")
               and (c.args.get("user") == GRACE or c.args.get("channel") in (GRACE, "C0GONE0001")
                    or c.method == "response_url")]
    assert methods[:2] == [("response_url", False), ("chat.postEphemeral", False)]


def test_later_replies_are_not_held_behind_a_failing_one(make_reliable, figures: Figures) -> None:  # type: ignore[no-untyped-def]
    """With the clock stopped, a reply whose response_url answered 500 waits for its retry;
    the same person's next reply goes at once. Then the first, failing on, goes by
    postEphemeral after its few tries."""
    clock = FakeClock()
    baton: Baton = make_reliable(clock=clock)
    baton.driver.slash_command("run one-approval amount=100", user=ALICE, channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    baton.slack.faults.next("response_url", status=500)
    baton.driver.click(user=GRACE, action_id="gate.decide.approve", channel=PAYMENTS, ts=gate.ts)
    first = wait_until(lambda: [r for r in outbox(baton) if r.method == "response_url"
                                and r.status == "pending" and r.next_attempt_at], what="a retry")
    baton.driver.click(user=GRACE, action_id="gate.decide.reject", channel=PAYMENTS, ts=gate.ts)
    figures.add("requests_sent", 2)
    figures.add("faults_injected")
    wait_until(lambda: len(baton.ephemerals(GRACE)) == 1, what="the second reply")
    (waiting,) = [r for r in outbox(baton) if r.id == first[0].id]
    assert waiting.status == "pending"  # still waiting for its retry: it held nothing up
    baton.slack.faults.next("response_url", status=502, times=2)

    def deferred(tries: int) -> bool:
        """The reply's retry is recorded (after its `tries`-th try): only then may the clock
        move, or the retry would be set from the moved clock and never come due."""
        (row,) = [r for r in outbox(baton) if r.id == first[0].id]
        return row.attempts == tries and row.status == "pending" and bool(row.next_attempt_at)

    for tries in (1, 2):  # its second and third tries fail too
        wait_until(lambda tries=tries: deferred(tries), what=f"retry {tries}")
        clock.advance(timedelta(minutes=1))
        baton.service.outbox.wake()
    wait_until(lambda: len(baton.ephemerals(GRACE)) == 2, what="the first reply, rerouted")
    # marked sent once Slack took it (a moment after the emulator shows it)
    done = wait_until(lambda: [r for r in outbox(baton) if r.id == first[0].id
                               and r.status == "sent"], what="the reply marked sent")
    assert done[0].method == "chat.postEphemeral"


def test_a_call_that_can_never_succeed_fails_visibly_and_its_lane_moves_on(
        make_reliable, database_url: str, figures: Figures, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    baton: Baton = make_reliable(clock=clock)
    baton.slack.faults.next("chat.postMessage", error="brand_new_error", times=50)
    with capture_logs() as logs:
        baton.driver.slash_command("run one-approval amount=100", user=ALICE, channel=PAYMENTS)
        # the run card is the first message of its lane; the gate message after it may be
        # queued already too (the run reaches its gate before the events are delivered)
        card = wait_until(lambda: [r for r in outbox(baton) if r.method == "chat.postMessage"],
                          what="the run card queued")[0]
        for _ in range(40):  # each try, then its backoff passes, until it is given up
            if next(r for r in outbox(baton) if r.id == card.id).status == "failed":
                break
            baton.service.outbox.deliver()
            clock.advance(timedelta(minutes=5))
        baton.slack.faults.clear()
        baton.service.outbox.wake()
        # the card failed; the gate request behind it in the run's lane still goes out
        wait_until(lambda: any("Pay it?" in json.dumps(m.blocks)
                               for m in baton.slack.workspace.messages(PAYMENTS)),
                   what="the lane moving on")
    (gave_up,) = [r for r in outbox(baton) if r.id == card.id]
    # the card, after its five tries (its updates failed too: they had no card to update)
    assert gave_up.status == "failed"
    assert "brand_new_error (5 attempts)" in (gave_up.last_error or ""), gave_up
    assert any(e["event"] == "slack_call_failed" for e in logs)
    figures.add("faults_injected", 50)
    # a transient error forever (Slack answering 500) is given up after a day
    baton.slack.faults.next("chat.postMessage", status=500, times=1000)
    baton.driver.slash_command("run one-approval amount=200", user=ALICE, channel=PAYMENTS)
    try:
        wait_until(lambda: any(r.status in ("pending", "unsure") and r.next_attempt_at
                               for r in outbox(baton)), what="a retry")
    except AssertionError as exc:
        raise AssertionError(str([(r.method, r.status, r.last_error)
                                  for r in outbox(baton)])) from exc
    for _ in range(30):
        clock.advance(timedelta(hours=1))
        baton.service.outbox.deliver()
    assert any("still failing" in (r.last_error or "") for r in outbox(baton) if r.status == "failed")
    baton.slack.faults.clear()
    # visible: /metrics and `baton status`
    with httpx.Client(trust_env=False) as http:
        metrics = http.get(f"{baton.url}/metrics").text
    line = next(x for x in metrics.splitlines()
                if x.startswith('baton_slack_calls_failed{method="chat.postMessage"}'))
    assert float(line.split()[-1]) >= 2
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "DATABASE_"))},
           "DATABASE_URL": database_url, "BATON_FLOWS": str(FLOWS), "BATON_ORG": str(ORG_FILE),
           "BATON_PYTHON_MODULES": ",".join(MODULES)}
    shown = subprocess.run([sys.executable, "-c", "from bot.cli import main; main()", "status"],
                           capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert "Slack calls failed for good" in shown.stdout, shown.stdout + shown.stderr
    assert "still failing after" in shown.stdout  # the latest: R-2's card
    one = subprocess.run([sys.executable, "-c", "from bot.cli import main; main()", "status", "R-1"],
                         capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert "failed for good" in one.stdout and "brand_new_error" in one.stdout, one.stdout
