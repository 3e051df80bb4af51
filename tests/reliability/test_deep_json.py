"""JSON nested deeper than anything Slack or a webhook caller sends gets a 400, never a 500
from a RecursionError (issue 21, item 4): every JSON parse of outside input, through the
real surfaces. A Slack body (form payload or JSON event), a webhook body, a button's value,
a modal's private_metadata and a Socket Mode envelope."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.socket_mode.request import SocketModeRequest
from sqlmodel import select

from bot.socket_mode import BatonSocketModeHandler
from bot.webhooks import sign
from bot.wire import MAX_DEPTH
from orchestrator.loader import load_flow
from storage.models import Decision, SlackInbox
from tests.bot.conftest import Baton
from tests.conftest import TEST_FLOWS
from tests.figures import Figures
from tests.reliability.conftest import ALICE, BOB, PAYMENTS, footprint
from tests.reliability.test_fuzz_payloads import Errors
from tests.reliability.test_socket_mode import Socket

pytestmark = pytest.mark.reliability(
    item="9", promise="Deeply nested JSON in a Slack payload, a webhook body, a button value or "
                         "modal metadata gets a 400 (or is ignored), never a 500")

FORM = "application/x-www-form-urlencoded"


def nested(depth: int, inner: str = "1") -> str:
    """`depth` lists inside one another (an object's worth of nesting is the same)."""
    return "[" * depth + inner + "]" * depth


def click(value: str, *, trigger: str | None = None) -> dict:
    return {"type": "block_actions", "user": {"id": BOB}, "trigger_id": trigger or uuid.uuid4().hex,
            "channel": {"id": PAYMENTS}, "actions": [{"action_id": "gate.decide.approve",
                                                      "value": value}]}


@pytest.fixture
def waiting(reliable: Baton) -> Iterator[tuple[Baton, Errors]]:
    import logging

    reliable.driver.slash_command("run one-approval amount=100", user=ALICE, channel=PAYMENTS)
    reliable.settle()
    errors = Errors()
    logging.getLogger("slack_bolt").addHandler(errors)
    try:
        yield reliable, errors
    finally:
        logging.getLogger("slack_bolt").removeHandler(errors)


def unfinished(baton: Baton) -> list[tuple[str, str]]:
    with baton.engine.db.read() as s:
        return [(r.key, r.status) for r in s.exec(select(SlackInbox)) if r.status != "done"]


def test_deep_slack_bodies_are_refused_with_a_400(waiting: tuple[Baton, Errors],
                                                  figures: Figures) -> None:
    baton, errors = waiting
    before = footprint(baton)
    deep_click = json.dumps(click("{}"))[:-1] + ', "deep": ' + nested(MAX_DEPTH + 1) + "}"
    bodies = {
        "form payload 100,000 deep": (urlencode({"payload": nested(100_000)}).encode(), FORM),
        "click with a field 5,000 deep": (urlencode(
            {"payload": json.dumps(click("{}"))[:-1] + ', "x": ' + nested(5_000) + "}"}).encode(), FORM),
        f"click with a field {MAX_DEPTH + 1} deep": (urlencode({"payload": deep_click}).encode(), FORM),
        "JSON event 100,000 deep": (('{"type": "event_callback", "event_id": "Ev1", "event": '
                                     + nested(100_000) + "}").encode(), "application/json"),
        "JSON body 900,000 deep": (nested(450_000).encode(), "application/json"),
    }
    for name, (body, content_type) in bodies.items():
        reply = baton.driver.post(body, content_type)
        figures.add("requests_sent")
        figures.add("faults_injected")
        assert reply.status == 400, (name, reply.status, reply.body[:200])
        assert "nested" in reply.json()["error"], (name, reply.body[:200])
        figures.add("refusals")
    baton.settle()
    assert footprint(baton) == before and errors.records == []
    # nesting as deep as Slack's own payloads is fine
    fine = json.dumps(click(json.dumps({"g": 1, "o": "approve"})))[:-1] + ', "x": ' + nested(20) + "}"
    assert baton.driver.post(urlencode({"payload": fine}).encode(), FORM).status == 200
    baton.settle()
    with baton.engine.db.read() as s:
        assert [d.decider for d in s.exec(select(Decision))] == ["bob"]


def test_deep_button_values_and_modal_metadata_are_not_baton_s(waiting: tuple[Baton, Errors],
                                                              figures: Figures) -> None:
    """Inside a valid payload, strings Baton parses as JSON itself: a button's value (Slack
    allows 2,000 characters) and a modal's private_metadata (3,000)."""
    baton, errors = waiting
    requests = [
        click(nested(999)),
        click(json.dumps({"g": json.loads(nested(40)), "o": "approve"})),
        {"type": "block_actions", "user": {"id": BOB}, "trigger_id": "t-claim",
         "actions": [{"action_id": "gate.claim", "value": nested(999)}]},
        {"type": "block_actions", "user": {"id": BOB}, "trigger_id": "t-edit",
         "actions": [{"action_id": "gate.edit", "value": nested(999)}]},
        {"type": "view_submission", "user": {"id": BOB}, "trigger_id": "t-view",
         "view": {"id": "V1", "type": "modal", "callback_id": "gate.reason",
                  "private_metadata": nested(1_499), "state": {"values": {}}}},
        {"type": "view_submission", "user": {"id": BOB}, "trigger_id": "t-edit-view",
         "view": {"id": "V2", "type": "modal", "callback_id": "gate.edit",
                  "private_metadata": '{"g": ' + nested(1_490) + "}", "state": {"values": {}}}},
    ]
    for payload in requests:
        reply = baton.driver.post(urlencode({"payload": json.dumps(payload)}).encode(), FORM)
        figures.add("requests_sent")
        figures.add("faults_injected")
        assert reply.status == 200, (reply.status, reply.body[:200])
    baton.settle()
    assert errors.records == [] and unfinished(baton) == []
    told = [e.text for e in baton.ephemerals(BOB)] + [m.text for m in baton.dms(BOB)]
    assert len(told) == 6 and all("not one of Baton's" in t for t in told), told
    figures.add("refusals", len(told))
    with baton.engine.db.read() as s:
        assert s.exec(select(Decision)).all() == []
    assert baton.engine.get_run("R-1").status == "waiting"


def test_a_deep_socket_mode_envelope_is_acknowledged_and_dropped(reliable: Baton,
                                                                 figures: Figures) -> None:
    handler = BatonSocketModeHandler(reliable.service.app, app_token="xapp-1-sandbox")
    socket = Socket()
    try:
        reliable.settle()
        before = footprint(reliable)
        payload = {"type": "event_callback", "event_id": "Ev-deep",
                   "event": {"type": "message", "channel_type": "im", "user": ALICE,
                             "channel": "D1", "text": "halt", "blocks": json.loads(nested(200))}}
        raw = {"envelope_id": "env-deep", "type": "events_api", "payload": payload,
               "accepts_response_payload": False}
        request = SocketModeRequest.from_dict(raw)
        assert request is not None
        handler.handle(socket, request)  # type: ignore[arg-type]
        figures.add("requests_sent")
        figures.add("faults_injected")
        assert socket.acked("env-deep")  # or Slack would send it again and again
        reliable.settle()
        assert footprint(reliable) == before
        figures.add("refusals")
    finally:
        handler.client.close()


@pytest.fixture
def hooked(make_baton, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Baton:  # type: ignore[no-untyped-def]
    flows = tmp_path / "flows"
    shutil.copytree(TEST_FLOWS, flows)
    variable = load_flow(flows / "hooked.yaml").flow.triggers.webhook.secret_env  # type: ignore[union-attr]
    monkeypatch.setenv(variable, "a-webhook-secret-of-forty-bytes-or-more-0123")
    return make_baton(flows)


def test_a_deep_webhook_body_is_refused_with_a_400(hooked: Baton, figures: Figures) -> None:
    secret = "a-webhook-secret-of-forty-bytes-or-more-0123"
    for body in (nested(100_000).encode(),
                 ('{"inputs": {"service": ' + nested(5_000, '"x"') + ', "version": "1"}}').encode(),
                 ('{"inputs": {"service": "a", "version": "1"}, "x": ' + nested(MAX_DEPTH) + "}").encode()):
        ts = int(time.time())
        with httpx.Client(trust_env=False, timeout=10) as http:
            reply = http.post(f"{hooked.url}/hooks/hooked", content=body, headers={
                "content-type": "application/json", "x-baton-timestamp": str(ts),
                "x-baton-signature": sign(secret, ts, body)})
        figures.add("requests_sent")
        figures.add("faults_injected")
        assert reply.status_code == 400 and "nested" in reply.json()["error"], reply.text[:300]
        figures.add("refusals")
    assert footprint(hooked)["run"] == 0


def test_a_number_too_long_to_read_is_refused_naming_it(hooked: Baton, figures: Figures) -> None:
    """A whole number of more digits than Python reads: the webhook's caller was told to
    call sys.set_int_max_str_digits() (a setting of the server's interpreter)."""
    secret = "a-webhook-secret-of-forty-bytes-or-more-0123"
    body = ('{"inputs": {"service": "a", "version": "1"}, "n": ' + "9" * 5000 + "}").encode()
    ts = int(time.time())
    with httpx.Client(trust_env=False, timeout=10) as http:
        reply = http.post(f"{hooked.url}/hooks/hooked", content=body, headers={
            "content-type": "application/json", "x-baton-timestamp": str(ts),
            "x-baton-signature": sign(secret, ts, body)})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"] == ("the body is not JSON: a number in it has 5,000 digits; at "
                                     "most 4,300 are read"), reply.text
    assert "sys." not in reply.text
    figures.add("requests_sent", 2)
    figures.add("refusals", 2)
    # the same number in a Slack payload: a 400 too, and nothing stored
    payload = json.dumps(click("{}"))[:-1] + ', "n": ' + "9" * 5000 + "}"
    slack = hooked.driver.post(urlencode({"payload": payload}).encode(), FORM)
    assert slack.status == 400 and "not valid JSON" in slack.json()["error"], slack.body
    assert footprint(hooked)["run"] == 0 and footprint(hooked)["slack_inbox"] == 0
