"""Interaction payloads fuzzed (issue 8, item 6): JSON with random keys, types and nesting,
shaped like Slack's block_actions, view_submission and events or not at all, signed with
the app's secret and posted to the real endpoint of the real service. Never a 500; a
refusal (400) names the problem and changes nothing; what is accepted is processed to the
end without an exception, and decides a gate only as its approvers may."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from storage.models import Decision, Gate, Run, SlackInbox
from tests.bot.conftest import Baton
from tests.figures import Figures
from tests.reliability.conftest import (
    ALICE,
    BOB,
    FUZZ,
    GRACE,
    PAYMENTS,
    footprint,
    surface_problems,
)

pytestmark = pytest.mark.reliability(
    item="6", promise="Malformed payloads get a clear error and change nothing; never a 500")

ALLOWED = {200, 400, 401, 404, 413, 415}
USERS = [ALICE, BOB, GRACE, "U0NOBODY1", "W0ENTERPRISE"]
ACTION_IDS = ["gate.decide.approve", "gate.decide.reject", "gate.decide.", "gate.decide.x",
              "gate.decide.follow_echo", "gate.edit", "gate.claim", "gate.snooze", "other"]
CALLBACKS = ["gate.reason", "gate.edit", "other", ""]

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from(["1", "-1", "{}", "[]", "null", "1:60",
                                                           "x:y", '{"g": 1}', "\udcff"]))
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly `value`, sometimes anything at all (one time in five)."""
    return st.one_of(value, value, value, value, anything)


gate_ids = st.sampled_from([1, 2, 0, -1, 2**70, "1", None])
button_values = st.one_of(
    st.builds(lambda g, o: json.dumps({"g": g, "o": o}), gate_ids,
              st.sampled_from(["approve", "reject", "x", "", None])),
    st.builds(lambda g: json.dumps({"g": g}), gate_ids),
    anything.map(json.dumps), st.text(max_size=20))
action = st.fixed_dictionaries(
    {"action_id": st.sampled_from(ACTION_IDS) | st.text(min_size=1, max_size=12),
     "value": maybe(button_values)},
    optional={"block_id": st.text(max_size=8), "type": st.sampled_from(["button", "static_select"]),
              "selected_option": maybe(st.fixed_dictionaries(
                  {"value": maybe(st.sampled_from(["1:60", "2:3600", "1:-5", "1:x", "x:60",
                                                   f"1:{10**30}", ":"]))})),
              "action_ts": anything})
user = st.fixed_dictionaries({"id": st.sampled_from(USERS) | st.text(min_size=1, max_size=4)},
                             optional={"name": anything, "team_id": anything})
channel = st.fixed_dictionaries({"id": st.sampled_from([PAYMENTS, "C0NOWHERE", ""])})
metadata = st.one_of(
    st.builds(lambda g, o, c: json.dumps({"g": g, "o": o, "c": c}), gate_ids,
              st.sampled_from(["approve", "reject", "x"]), st.sampled_from([PAYMENTS, "C0X"])),
    anything.map(json.dumps), st.text(max_size=20))
view = st.fixed_dictionaries(
    {"type": st.just("modal"), "callback_id": maybe(st.sampled_from(CALLBACKS)),
     "id": maybe(st.text(min_size=1, max_size=8))},
    optional={"private_metadata": maybe(metadata),
              "state": maybe(st.fixed_dictionaries({"values": maybe(st.dictionaries(
                  st.sampled_from(["reason", "edit:amount", "x"]), maybe(st.dictionaries(
                      st.sampled_from(["reason_input", "value"]), maybe(st.fixed_dictionaries(
                          {"value": maybe(st.text(max_size=30))}))))))}))})
block_actions = st.fixed_dictionaries(
    {"type": st.just("block_actions"), "user": user,
     "actions": st.lists(action, min_size=1, max_size=2),
     "trigger_id": maybe(st.text(min_size=1, max_size=10))},
    optional={"channel": channel, "container": channel,
              "view": view, "team": anything})
view_submission = st.fixed_dictionaries(
    {"type": st.sampled_from(["view_submission", "view_closed"]), "user": user, "view": view,
     "trigger_id": maybe(st.text(min_size=1, max_size=10))},
    optional={"team": anything})
event = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "app_mention", "app_home_opened", "reaction_added"]),
     "user": maybe(st.sampled_from(USERS)), "channel": maybe(st.sampled_from([PAYMENTS, "D0NOWHERE"])),
     "text": maybe(st.text(max_size=40) | st.sampled_from(["help", "status", "flows", "stats",
                                                            "trace R-1", "halt"]))},
    optional={"tab": anything, "channel_type": maybe(st.sampled_from(["im", "channel"])),
              "subtype": anything,
              "bot_id": anything, "ts": anything, "thread_ts": anything})
event_callback = st.fixed_dictionaries(
    {"type": st.just("event_callback"), "event": event, "event_id": st.text(min_size=1, max_size=10)},
    optional={"team_id": anything,
              "authorizations": anything})


# Shapes Slack sends that Baton has no listener for, and the edit modal's submission with the
# values people type into a number field.
numbers = st.one_of(st.sampled_from(["12345.678", "12345678", "1.23457e+07", "-1", "0", "1e999",
                                     "NaN", "", " 5 ", "1,000", "0x10", "9" * 400]),
                    st.floats().map(repr), st.integers().map(str))
other_kinds = st.fixed_dictionaries(
    {"type": st.sampled_from(["shortcut", "message_action", "block_suggestion",
                              "interactive_message", "dialog_submission", "workflow_step_edit"]),
     "user": user, "trigger_id": maybe(st.text(min_size=1, max_size=10))},
    optional={"callback_id": maybe(st.sampled_from(CALLBACKS)), "action_id": maybe(
        st.sampled_from(ACTION_IDS)), "value": maybe(st.text(max_size=10)),
              "message": maybe(st.fixed_dictionaries({"ts": st.text(max_size=5)})),
              "channel": channel, "response_url": maybe(st.sampled_from(
                  ["https://hooks.slack.com/actions/T1/1/x", "http://127.0.0.1:9/x", ""]))})
edit_submission = st.fixed_dictionaries(
    {"type": st.just("view_submission"), "user": user,
     "trigger_id": st.text(min_size=1, max_size=10),
     "view": st.fixed_dictionaries(
         {"type": st.just("modal"), "id": st.text(min_size=1, max_size=6),
          "callback_id": st.just("gate.edit"),
          "private_metadata": st.builds(lambda g: json.dumps({"g": g, "c": PAYMENTS}), gate_ids),
          "state": st.fixed_dictionaries({"values": st.fixed_dictionaries(
              {}, optional={"edit:amount": st.fixed_dictionaries({"value": st.fixed_dictionaries(
                  {"type": st.just("number_input"), "value": maybe(numbers)})}),
                  "reason": st.fixed_dictionaries({"reason_input": st.fixed_dictionaries(
                      {"value": maybe(st.text(max_size=20))})})})})})})
# A slash command's fields as JSON, where any field may be of any type (Slack sends them
# form-encoded, every one a string).
json_command = st.fixed_dictionaries(
    {"command": maybe(st.just("/baton")), "user_id": maybe(st.sampled_from(USERS)),
     "text": maybe(st.sampled_from(["status", "help", "trace R-1 full", "stats", "flows",
                                    "run one-approval amount=1", "halt", "stop R-9"]))},
    optional={"channel_id": maybe(st.just(PAYMENTS)), "trigger_id": anything,
              "response_url": anything, "team_id": anything, "enterprise_id": anything,
              "is_enterprise_install": anything})
url_verification = st.fixed_dictionaries({"type": st.just("url_verification"),
                                          "challenge": maybe(st.text(max_size=20))})


def form(payload: Any) -> tuple[bytes, str]:
    return urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"


def as_json(payload: Any) -> tuple[bytes, str]:
    return json.dumps(payload).encode(), "application/json"


BODIES = st.one_of(
    block_actions.map(form), block_actions.map(form), block_actions.map(form),
    view_submission.map(form), view_submission.map(form), event_callback.map(as_json),
    event_callback.map(as_json),
    st.dictionaries(st.text(max_size=10), anything, max_size=5).map(form),
    anything.map(form), anything.map(as_json),
    other_kinds.map(form), edit_submission.map(form), edit_submission.map(form),
    url_verification.map(as_json), json_command.map(as_json),
    st.dictionaries(st.sampled_from(["command", "text", "user_id", "channel_id", "trigger_id",
                                     "payload", "type"]), st.text(max_size=20), max_size=5)
    .map(lambda d: (urlencode(d).encode(), "application/x-www-form-urlencoded")))


class Errors(logging.Handler):
    """Errors bolt logged while running a listener."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        self.records.append(f"{record.getMessage()} {error!r}" if error else record.getMessage())


@pytest.fixture
def gates(reliable: Baton) -> Iterator[tuple[Baton, Errors]]:
    """Two runs waiting at a gate (ids 1 and 2), bolt's errors collected."""
    reliable.driver.slash_command("run one-approval amount=100", user=ALICE, channel=PAYMENTS)
    reliable.driver.slash_command("run two-approvals amount=100", user=ALICE, channel=PAYMENTS)
    reliable.settle()
    errors = Errors()
    logger = logging.getLogger("slack_bolt")
    logger.addHandler(errors)
    try:
        yield reliable, errors
    finally:
        logger.removeHandler(errors)


def legitimate(baton: Baton) -> None:
    """Every decision was taken by an approver of its gate, once per person."""
    with baton.engine.db.read() as s:
        for decision in s.exec(select(Decision)):
            gate = s.get(Gate, decision.gate_id)
            assert gate is not None and decision.decider in gate.approvers, decision
        deciders = [(d.gate_id, d.decider) for d in s.exec(select(Decision))]
    assert len(deciders) == len(set(deciders))


@settings(FUZZ, max_examples=400)
@given(body=BODIES)
@example(body=form({"type": "block_actions", "user": {"id": BOB}, "trigger_id": "t1",
                    "actions": [{"action_id": "gate.decide.approve", "value": '{"g": 1, "o": "approve"}'}],
                    "channel": {"id": PAYMENTS}}))
@example(body=form({"type": "view_submission", "user": {"id": BOB}, "trigger_id": "t2",
                    "view": {"id": "V1", "callback_id": "gate.reason", "private_metadata": "zz"}}))
@example(body=form({"type": "view_submission", "user": {"id": BOB}, "trigger_id": "t3",
                    "view": {"id": "V2", "callback_id": "gate.edit", "private_metadata": "[1]",
                             "state": {"values": []}}}))
@example(body=form({"type": "block_actions", "user": {"id": BOB}, "trigger_id": "t4",
                    "actions": [{"action_id": "gate.snooze",
                                 "selected_option": {"value": f"2:{10**30}"}}]}))
@example(body=form({"type": "block_actions", "user": {"id": BOB}, "trigger_id": "t5",
                    "actions": [{"action_id": "gate.decide.approve", "value": '{"g": ' + str(2**70)
                                 + ', "o": "approve"}'}]}))
@example(body=as_json({"type": "event_callback", "event_id": "Ev9",
                       "event": {"type": "message", "channel_type": "im", "text": 5, "user": ALICE,
                                 "channel": "D1"}}))
@example(body=as_json({"type": "event_callback", "event_id": "Ev10", "event": {"type": "app_home_opened"}}))
@example(body=as_json({"command": "/baton", "user_id": ALICE, "text": 5, "trigger_id": "t6"}))
def test_any_payload_is_answered_without_a_500_and_a_refusal_changes_nothing(
        gates: tuple[Baton, Errors], body: tuple[bytes, str], figures: Figures) -> None:
    baton, errors = gates
    baton.settle()
    before = footprint(baton)
    reply = baton.driver.post(*body)
    figures.add("requests_sent")
    figures.add("examples")
    figures.add("fuzzed_requests")
    figures.add("server_errors", 0)  # recorded as 0 unless one happens
    if reply.status >= 500:
        figures.add("server_errors")
    assert reply.status in ALLOWED, (reply.status, reply.body)
    baton.settle()
    if reply.status >= 400:
        figures.add("refusals")
        answer = reply.json()
        assert isinstance(answer, dict) and str(answer.get("error", "")).strip(), reply.body
        assert footprint(baton) == before
    with baton.engine.db.read() as s:
        unfinished = [(r.key, r.status, r.error) for r in s.exec(select(SlackInbox))
                      if r.status != "done"]
        assert len(s.exec(select(Run)).all()) == 2
    assert unfinished == [], "a stored request failed to be processed"
    assert errors.records == [], errors.records
    legitimate(baton)
    # (Slack refuses a DM to a made-up user; what the bot sent must still be valid Block Kit)
    assert surface_problems(baton, refused=False) == []


@pytest.mark.parametrize("fields", [
    {"text": 5}, {"text": ["status"]}, {"text": None}, {"channel_id": ["C0X"]},
    {"channel_id": {"id": PAYMENTS}}, {"trigger_id": 7}, {"response_url": {"u": 1}},
    {"team_id": 5}, {"thread_ts": 1.5},
])
def test_a_slash_command_whose_fields_are_not_text_is_refused(reliable: Baton, figures: Figures,
                                                              fields: dict[str, Any]) -> None:
    """As JSON, a command's fields may be of any type: `text: 5` failed the command on
    Baton's side (its request left unfinished, retried by every sweep), a list for a channel
    started a run whose card could go nowhere. Slack sends them form-encoded, every one a
    string; anything else is refused at the door, naming the field."""
    reliable.settle()
    before = footprint(reliable)
    command = {"command": "/baton", "user_id": ALICE, "text": "run one-approval amount=1",
               "channel_id": PAYMENTS, "trigger_id": "t-json"}
    reply = reliable.driver.post(*as_json({**command, **fields}))
    figures.add("requests_sent")
    figures.add("refusals")
    assert reply.status == 400, reply.body
    (odd,) = fields
    assert reply.json()["error"] == (f"not a Slack request: a slash command's fields are strings "
                                     f"({odd} is not)")
    reliable.settle()
    assert footprint(reliable) == before
    # the same command as Slack sends it is answered
    answered = reliable.driver.post(urlencode(command).encode(), "application/x-www-form-urlencoded")
    assert answered.status == 200 and "Starting" in answered.body
