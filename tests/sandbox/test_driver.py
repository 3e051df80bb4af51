"""What the driver sends (Slack's payload shapes and signatures) and how it applies answers."""

from __future__ import annotations

import json

import pytest
from slack_sdk.signature import SignatureVerifier
from starlette.responses import PlainTextResponse

from sandbox import Driver, EmulatorServer, SandboxError
from sandbox.driver import signature
from tests.sandbox.conftest import ALICE, BOB, PAYMENTS, RecordingBot


def modal(callback_id: str = "reason", **extra: object) -> dict:
    return {"type": "modal", "callback_id": callback_id, "title": {"type": "plain_text", "text": "Why"},
            "submit": {"type": "plain_text", "text": "Send"}, "blocks": [
                {"type": "input", "block_id": "reason", "label": {"type": "plain_text", "text": "Reason"},
                 "element": {"type": "plain_text_input", "action_id": "text", "initial_value": "prefilled"}},
                {"type": "input", "block_id": "when", "optional": True,
                 "label": {"type": "plain_text", "text": "Snooze for"},
                 "element": {"type": "static_select", "action_id": "minutes", "options": [
                     {"text": {"type": "plain_text", "text": "1 hour"}, "value": "60"}]}},
            ], **extra}


def test_signature_is_the_one_slack_sdk_verifies() -> None:
    body = b"token=x&text=hello"
    assert signature("secret", 1700000000, body) == SignatureVerifier("secret").generate_signature(
        timestamp="1700000000", body=body)


def test_slash_command_fields_and_headers(slack: EmulatorServer, recording_bot: RecordingBot,
                                          raw_driver: Driver) -> None:
    delivery = raw_driver.slash_command("status R-1", user=ALICE, channel="#payments")
    headers, body = recording_bot.received[0]
    fields = recording_bot.payload()
    ws = slack.workspace
    assert delivery.status == 200 and delivery.request.body == body
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert SignatureVerifier(ws.app.signing_secret).is_valid(
        body, headers["x-slack-request-timestamp"], headers["x-slack-signature"])
    assert {k: fields[k] for k in ("team_id", "channel_id", "channel_name", "user_id", "user_name", "command",
                                   "text", "api_app_id", "token")} == {
        "team_id": ws.team.id, "channel_id": PAYMENTS, "channel_name": "payments", "user_id": ALICE,
        "user_name": "alice", "command": "/baton", "text": "status R-1", "api_app_id": ws.app.app_id,
        "token": ws.app.verification_token}
    assert fields["response_url"].startswith(slack.url) and fields["trigger_id"]


def test_an_in_channel_ack_is_posted_and_a_plain_one_is_ephemeral(slack: EmulatorServer,
                                                                  recording_bot: RecordingBot,
                                                                  raw_driver: Driver) -> None:
    recording_bot.answer_json({"response_type": "in_channel", "text": "Run R-2 started"})
    raw_driver.slash_command("run x", user=ALICE, channel=PAYMENTS)
    recording_bot.answers.append(PlainTextResponse("Unknown flow 'y'"))
    raw_driver.slash_command("run y", user=ALICE, channel=PAYMENTS)
    assert [m.text for m in slack.workspace.messages(PAYMENTS)] == ["Run R-2 started"]
    assert [e.text for e in slack.workspace.ephemerals(ALICE)] == ["Unknown flow 'y'"]


def test_block_actions_payload_carries_the_message_and_the_button(slack: EmulatorServer,
                                                                  recording_bot: RecordingBot,
                                                                  raw_driver: Driver) -> None:
    blocks = [{"type": "actions", "block_id": "gate:R-3", "elements": [
        {"type": "button", "action_id": "decide", "value": "approve", "style": "primary",
         "text": {"type": "plain_text", "text": "Approve"}},
        {"type": "button", "action_id": "decide", "value": "reject",
         "text": {"type": "plain_text", "text": "Reject"}},
    ]}]
    gate = slack.workspace.post_message(PAYMENTS, text="R-3", blocks=blocks)
    raw_driver.click(user=BOB, action_id="decide", value="reject", channel=PAYMENTS, ts=gate.ts)
    payload = recording_bot.payload()
    assert payload["type"] == "block_actions"
    assert payload["user"] == {"id": BOB, "username": "bob", "name": "bob",
                               "team_id": slack.workspace.team.id}
    assert payload["container"] == {"type": "message", "message_ts": gate.ts, "channel_id": PAYMENTS,
                                    "is_ephemeral": False}
    assert payload["channel"] == {"id": PAYMENTS, "name": "payments"}
    assert payload["message"]["blocks"] == blocks and payload["message"]["ts"] == gate.ts
    (action,) = payload["actions"]
    assert {k: action[k] for k in ("action_id", "block_id", "value", "type")} == {
        "action_id": "decide", "block_id": "gate:R-3", "value": "reject", "type": "button"}
    assert payload["trigger_id"] and payload["response_url"].startswith(f"{slack.url}/response/")


def test_clicking_what_is_not_there_is_a_sandbox_error(slack: EmulatorServer, raw_driver: Driver) -> None:
    gate = slack.workspace.post_message(PAYMENTS, text="plain")
    with pytest.raises(SandboxError, match="no element with action_id 'approve'"):
        raw_driver.click(user=BOB, action_id="approve", channel=PAYMENTS, ts=gate.ts)
    with pytest.raises(SandboxError, match="no message"):
        raw_driver.click(user=BOB, action_id="approve", channel=PAYMENTS, ts="1.000001")
    with pytest.raises(SandboxError, match="has no modal open"):
        raw_driver.submit_view(user=BOB)


def test_view_submission_state_and_response_actions(slack: EmulatorServer, recording_bot: RecordingBot,
                                                   raw_driver: Driver) -> None:
    ws = slack.workspace
    first = ws.open_modal(BOB, modal())
    recording_bot.answer_json({"response_action": "push", "view": modal("second")})
    raw_driver.submit_view(user=BOB, values={"minutes": "60"})
    submitted = recording_bot.payload()
    assert submitted["type"] == "view_submission" and submitted["view"]["id"] == first.id
    assert submitted["view"]["state"]["values"] == {
        "reason": {"text": {"type": "plain_text_input", "value": "prefilled"}},  # the untouched initial value
        "when": {"minutes": {"type": "static_select", "selected_option": {
            "text": {"type": "plain_text", "text": "1 hour"}, "value": "60"}}}}
    second = ws.modal_stack(BOB)[-1]
    assert [v.callback_id for v in ws.modal_stack(BOB)] == ["reason", "second"]
    assert second.previous_view_id == first.id and second.root_view_id == first.id

    recording_bot.answer_json({"response_action": "update", "view": modal("second-updated")})
    raw_driver.submit_view(user=BOB, values={"reason": "why not"})
    assert ws.modal_stack(BOB)[-1].id == second.id
    assert ws.modal_stack(BOB)[-1].callback_id == "second-updated"

    recording_bot.answer_json({"response_action": "clear"})
    raw_driver.submit_view(user=BOB, values={"reason": "done"})
    assert ws.modal_stack(BOB) == []

    ws.open_modal(BOB, modal())
    with pytest.raises(SandboxError, match=r"'Reason' .* is required"):
        raw_driver.submit_view(user=BOB, values={"reason": ""})
    with pytest.raises(SandboxError, match="no input block or action_id"):
        raw_driver.submit_view(user=BOB, values={"nope": "x"})
    assert len(recording_bot.received) == 3  # refused submissions never reach the app


def test_a_modal_closes_silently_unless_it_asked_to_be_told(slack: EmulatorServer,
                                                          recording_bot: RecordingBot,
                                                          raw_driver: Driver) -> None:
    slack.workspace.open_modal(BOB, modal())
    assert raw_driver.close_view(user=BOB) is None and recording_bot.received == []
    slack.workspace.open_modal(BOB, modal(notify_on_close=True))
    assert raw_driver.close_view(user=BOB) is not None
    assert recording_bot.payload()["type"] == "view_closed"


def test_events_have_slacks_envelope(slack: EmulatorServer, recording_bot: RecordingBot,
                                     raw_driver: Driver) -> None:
    raw_driver.mention("status", user=ALICE, channel=PAYMENTS)
    envelope = recording_bot.payload()
    ws = slack.workspace
    assert envelope["type"] == "event_callback" and envelope["event_id"].startswith("Ev")
    assert envelope["authorizations"][0]["user_id"] == ws.app.bot_user_id
    assert envelope["event"]["type"] == "app_mention"
    assert envelope["event"]["text"] == f"<@{ws.app.bot_user_id}> status"
    raw_driver.direct_message("hi", user=ALICE)
    assert recording_bot.payload()["event"]["channel_type"] == "im"
    raw_driver.open_home(user=ALICE)
    assert recording_bot.payload()["event"]["tab"] == "home"
    assert json.loads(recording_bot.received[-1][1])["event"]["channel"] == ws.dm_of(ALICE).id  # type: ignore[union-attr]
