"""Requests from outside (issue 8, item 4), through the real HTTP endpoint of the real
service: forged, stale, tampered, oversized, mistyped and malformed requests are refused
with the right status and change nothing, neither in the database nor in Slack; a replayed
or redelivered request is processed once."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import httpx
import pytest
from sqlmodel import select

from sandbox import Signing, SlackRequest, payloads
from storage.models import Decision, Run, SlackInbox, TraceEntry
from tests.bot.conftest import Baton
from tests.figures import Figures
from tests.reliability.conftest import (
    ALICE,
    BOB,
    CAROL,
    GRACE,
    PAYMENTS,
    footprint,
    surface_problems,
)

pytestmark = pytest.mark.reliability(
    item="4", promise="HTTP requests with a bad or stale signature are refused; bad input changes "
                      "nothing; each gate takes exactly one decision whatever Slack retries")

FORM = "application/x-www-form-urlencoded"


def command_request(baton: Baton, text: str, user: str = ALICE) -> SlackRequest:
    """A signed `/baton` slash command, exactly as Slack would send it, not sent yet."""
    ws, driver = baton.slack.workspace, baton.driver
    person, place = ws.user(user), ws.channel(PAYMENTS)
    token = ws.issue_response_url(person.id, place.id)
    fields = payloads.slash_command(ws, user=person, channel=place, command="/baton", text=text,
                                    response_url=f"{driver.emulator_url}/response/{token}",
                                    trigger_id=ws.issue_trigger(person.id))
    return driver.sign(urlencode(fields).encode(), FORM)


def signed(baton: Baton, body: bytes, content_type: str = FORM, **kw: object) -> SlackRequest:
    return baton.driver.sign(body, content_type, **kw)  # type: ignore[arg-type]


def headers(request: SlackRequest, drop: tuple[str, ...] = (), **changed: str | bytes) -> SlackRequest:
    sent = {k: v for k, v in request.headers.items() if k not in drop}
    sent.update({k.replace("_", "-"): v for k, v in changed.items()})
    return dataclasses.replace(request, headers=sent)


def interaction(payload: object) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Baton, SlackRequest], SlackRequest]
    status: int
    says: str  # what the refusal names


def other_signature(baton: Baton, request: SlackRequest) -> SlackRequest:
    """`request` with the (valid) signature of another body."""
    other = signed(baton, b"token=x")
    return headers(request, X_Slack_Signature=other.headers["X-Slack-Signature"],
                   X_Slack_Request_Timestamp=other.headers["X-Slack-Request-Timestamp"])


def tampered(request: SlackRequest) -> SlackRequest:
    """The command's amount raised, or the click's approve turned into reject."""
    body = request.body.replace(b"amount%3D100", b"amount%3D900").replace(
        b"%5C%22approve%5C%22", b"%5C%22reject%5C%22")
    assert body != request.body
    return dataclasses.replace(request, body=body)


CASES = [
    # -- who sent it
    Case("no signature headers", lambda b, r: headers(r, drop=("X-Slack-Signature",
                                                                "X-Slack-Request-Timestamp")), 401,
         "signature"),
    Case("no timestamp", lambda b, r: headers(r, drop=("X-Slack-Request-Timestamp",)), 401, "signature"),
    Case("no signature", lambda b, r: headers(r, drop=("X-Slack-Signature",)), 401, "signature"),
    Case("empty signature", lambda b, r: headers(r, X_Slack_Signature=""), 401, "signature"),
    Case("another app's secret", lambda b, r: signed(b, r.body, signing=Signing(secret="not-ours")),
         401, "signature"),
    Case("signed six minutes ago", lambda b, r: signed(
        b, r.body, signing=Signing(timestamp=int(time.time()) - 6 * 60)), 401, "stale"),
    Case("signed six minutes ahead", lambda b, r: signed(
        b, r.body, signing=Signing(timestamp=int(time.time()) + 6 * 60)), 401, "stale"),
    Case("timestamp is not a number", lambda b, r: headers(r, X_Slack_Request_Timestamp="yesterday"),
         401, "signature"),
    Case("timestamp in other digits", lambda b, r: headers(
        r, X_Slack_Request_Timestamp="١٧٠٠٠٠٠٠٠٠".encode()), 401, "signature"),  # type: ignore[arg-type]
    Case("signature of another body", other_signature, 401, "signature"),
    Case("signature scheme v1", lambda b, r: headers(
        r, X_Slack_Signature=r.headers["X-Slack-Signature"].replace("v0=", "v1=")), 401, "signature"),
    Case("body changed after signing", lambda b, r: tampered(r), 401, "signature"),
    Case("body extended after signing", lambda b, r: dataclasses.replace(r, body=r.body + b"&x=1"),
         401, "signature"),
    Case("body truncated after signing", lambda b, r: dataclasses.replace(r, body=r.body[:-3]),
         401, "signature"),
    # -- what it is
    Case("over 1 MB, signed", lambda b, r: signed(b, r.body + b"&pad=" + b"x" * 1_000_001), 413,
         "too large"),
    Case("text/plain, signed", lambda b, r: signed(b, r.body, "text/plain"), 415, "content type"),
    Case("XML, signed", lambda b, r: signed(b, b"<xml/>", "application/xml"), 415, "content type"),
    Case("multipart, signed", lambda b, r: signed(b, r.body, "multipart/form-data; boundary=x"), 415,
         "content type"),
    Case("no content type", lambda b, r: headers(r, drop=("Content-Type",)), 415, "content type"),
    Case("invalid UTF-8, signed", lambda b, r: signed(b, r.body + b"&text=\xff\xfe\xc3("), 400,
         "UTF-8"),
    Case("invalid UTF-8, unsigned", lambda b, r: headers(dataclasses.replace(r, body=b"\xff\xfe"),
                                                         drop=("X-Slack-Signature",)), 401,
         "signature"),
    # -- malformed, but signed (only Slack, or someone holding the secret, gets this far)
    Case("payload not JSON", lambda b, r: signed(b, b"payload=%7Bnot+json"), 400, "not valid JSON"),
    Case("payload a list", lambda b, r: signed(b, interaction([1, 2])), 400, "payload must be a JSON object"),
    Case("JSON not an object", lambda b, r: signed(b, b"[1, 2]", "application/json"), 400,
         "JSON object"),
    Case("JSON cut short", lambda b, r: signed(b, b'{"type": "event_callback", ', "application/json"),
         400, "not valid JSON"),
    Case("empty body", lambda b, r: signed(b, b""), 400, "expected a slash command"),
    Case("form of nothing Slack sends", lambda b, r: signed(b, b"%%%&&&=="), 400,
         "expected a slash command"),
    Case("slash command without a user", lambda b, r: signed(
        b, urlencode({"command": "/baton", "text": "run one-approval amount=100"}).encode()), 400,
         "user_id"),
    Case("click without actions", lambda b, r: signed(
        b, interaction({"type": "block_actions", "user": {"id": BOB}, "actions": []})), 400,
         "actions"),
    Case("click without a user", lambda b, r: signed(b, interaction(
        {"type": "block_actions", "actions": [{"action_id": "gate.decide.approve",
                                               "value": '{"g": 1, "o": "approve"}'}]})), 400,
         "user.id"),
    Case("click by a user that is a string", lambda b, r: signed(b, interaction(
        {"type": "block_actions", "user": BOB, "trigger_id": "t",
         "actions": [{"action_id": "gate.decide.approve", "value": '{"g": 1, "o": "approve"}'}]})),
         400, "user.id"),
    Case("submission without a view", lambda b, r: signed(
        b, interaction({"type": "view_submission", "user": {"id": BOB}})), 400, "view"),
    Case("event without an event", lambda b, r: signed(
        b, json.dumps({"type": "event_callback", "event_id": "Ev1"}).encode(), "application/json"),
         400, "event"),
    Case("malformed and unsigned", lambda b, r: headers(
        dataclasses.replace(r, body=b"payload=%7Bnot+json"), drop=("X-Slack-Signature",)), 401,
         "signature"),
]


@pytest.fixture
def waiting_gate(reliable: Baton) -> Iterator[Baton]:
    """A run of one-approval waiting at its gate, so a click could decide it."""
    reliable.driver.slash_command("run one-approval amount=100", user=ALICE, channel=PAYMENTS)
    reliable.settle()
    yield reliable


def refuse_all(baton: Baton, base: SlackRequest, figures: Figures) -> None:
    """Send every case built from `base`; each must be refused as expected and change nothing."""
    wrong: list[str] = []
    for case in CASES:
        before = footprint(baton)
        reply = baton.driver.send(case.build(baton, base))
        figures.add("requests_sent")
        figures.add("faults_injected")
        answer = reply.json()
        said = str(answer.get("error", "")) if isinstance(answer, dict) else ""
        baton.settle()
        if reply.status != case.status:
            wrong.append(f"{case.name}: {reply.status} {reply.body[:200]}")
        elif case.says.lower() not in said.lower():
            wrong.append(f"{case.name}: the refusal does not say what is wrong: {reply.body[:200]}")
        elif footprint(baton) != before:
            wrong.append(f"{case.name}: changed something: {before} -> {footprint(baton)}")
        else:
            figures.add("refusals")
    assert wrong == []


def test_forged_or_broken_commands_are_refused_and_change_nothing(reliable: Baton,
                                                                   figures: Figures) -> None:
    reliable.settle()
    base = command_request(reliable, "run one-approval amount=100")
    refuse_all(reliable, base, figures)
    # The untouched request starts a run: the refusals above are what stopped the others.
    assert reliable.driver.send(base).status == 200
    figures.add("requests_sent")
    reliable.settle()
    with reliable.engine.db.read() as s:
        assert len(s.exec(select(Run)).all()) == 1


def test_forged_or_broken_clicks_decide_nothing(waiting_gate: Baton, figures: Figures) -> None:
    baton = waiting_gate
    gate = baton.gate_message()
    base = baton.driver.prepare_click(user=BOB, action_id="gate.decide.approve", channel=PAYMENTS,
                                      ts=gate.ts)
    refuse_all(baton, base, figures)
    # The same click, as Slack signed it, decides the gate.
    assert baton.driver.send(base).status == 200
    figures.add("requests_sent")
    baton.settle()
    assert baton.engine.get_run("R-1").status == "succeeded"
    assert surface_problems(baton) == []


def test_a_huge_body_without_a_length_is_cut_off(reliable: Baton, figures: Figures) -> None:
    """Chunked upload, no Content-Length: the endpoint stops reading past 1 MB."""
    reliable.settle()
    before = footprint(reliable)

    def chunks() -> Iterator[bytes]:
        yield b"command=%2Fbaton&text="
        for _ in range(40):
            yield b"x" * 65536

    with httpx.Client(trust_env=False, timeout=10) as http:
        reply = http.post(f"{reliable.url}/slack/events", content=chunks(),
                          headers={"Content-Type": FORM})
    figures.add("requests_sent")
    figures.add("faults_injected")
    assert reply.status_code == 413 and "too large" in reply.json()["error"]
    figures.add("refusals")
    reliable.settle()
    assert footprint(reliable) == before


def test_a_replayed_or_redelivered_command_starts_one_run(reliable: Baton, figures: Figures) -> None:
    first = reliable.driver.slash_command("run one-approval amount=100", user=ALICE, channel=PAYMENTS)
    again = [reliable.driver.replay(first) for _ in range(3)]
    retried = [reliable.driver.redeliver(first, retry_num=n) for n in (1, 2)]
    dm = reliable.driver.direct_message("flows", user=ALICE)
    dm_again = [reliable.driver.replay(dm), reliable.driver.redeliver(dm, retry_num=1)]
    figures.add("requests_sent", 2 + len(again) + len(retried) + len(dm_again))
    figures.add("faults_injected", len(again) + len(retried) + len(dm_again))
    assert all(r.status == 200 for r in [first, *again, *retried, dm, *dm_again])
    reliable.settle()
    with reliable.engine.db.read() as s:
        runs = s.exec(select(Run)).all()
        started = s.exec(select(TraceEntry).where(TraceEntry.kind == "run_started")).all()
        inbox = s.exec(select(SlackInbox)).all()
    assert len(runs) == 1 and len(started) == 1
    assert len(inbox) == 2  # one command, one DM: the copies were recognised at the door
    cards = [m for m in reliable.channel() if m.text.startswith("R-")]
    assert len(cards) == 1
    replies = [m for m in reliable.dms(ALICE) if m.user != ALICE]
    assert len(replies) == 1, [m.text for m in replies]
    assert surface_problems(reliable) == []


def test_a_replayed_click_records_one_decision_and_tells_once(reliable: Baton, figures: Figures,
                                                              ledger: Callable) -> None:
    reliable.driver.slash_command("run two-approvals amount=100", user=ALICE, channel=PAYMENTS)
    reliable.settle()
    gate = reliable.gate_message()

    def click_and_repeat(user: str) -> None:
        first = reliable.driver.click(user=user, action_id="gate.decide.approve", channel=PAYMENTS,
                                      ts=gate.ts)
        copies = [reliable.driver.replay(first) for _ in range(3)]
        copies += [reliable.driver.redeliver(first, retry_num=n) for n in (1, 2)]
        figures.add("requests_sent", 1 + len(copies))
        figures.add("faults_injected", len(copies))
        assert all(r.status == 200 for r in [first, *copies])
        reliable.settle()

    click_and_repeat(BOB)  # an approver: one vote of two
    click_and_repeat(GRACE)  # not an approver: refused
    with reliable.engine.db.read() as s:
        decisions = s.exec(select(Decision)).all()
    assert [d.decider for d in decisions] == ["bob"]
    (vote,) = reliable.ephemerals(BOB)
    assert "Approve recorded" in vote.text and "1 of 2" in vote.text
    (refusal,) = reliable.ephemerals(GRACE)
    assert "not an approver" in refusal.text
    figures.add("refusals")
    click_and_repeat(CAROL)  # the second approval closes the gate
    assert reliable.engine.get_run("R-1").status == "succeeded"
    assert len(ledger()) == 1  # the action ran once
    assert reliable.ephemerals(CAROL) == []  # the gate message itself says it was approved
    decided = json.dumps(reliable.slack.workspace.message(PAYMENTS, gate.ts).blocks)
    assert "*Approved* by <@U0BOB0001>, <@U0CAROL01>" in decided
    with reliable.engine.db.read() as s:
        assert len(s.exec(select(Decision)).all()) == 2
    figures.add("decisions_recorded", 2)
    assert surface_problems(reliable) == []
