"""A real slack_bolt App in HTTP mode, driven by the emulator as Slack drives it.

Bolt verifies every signature, parses every payload and calls the Web API with its own
WebClient: if the emulator's requests or answers were off, these listeners would not run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk.errors import SlackApiError

from sandbox import Driver, EmulatorServer, Signing
from tests.sandbox.conftest import ALICE, BOB, PAYMENTS, eventually

REASON_MODAL = "reason"


def gate_blocks(run: str) -> list[dict[str, Any]]:
    return [
        {"type": "section", "block_id": "ask", "text": {"type": "mrkdwn", "text": f"Approve payment {run}?"}},
        {"type": "actions", "block_id": "decide", "elements": [
            {"type": "button", "action_id": "approve", "text": {"type": "plain_text", "text": "Approve"},
             "style": "primary", "value": run},
            {"type": "button", "action_id": "reject", "text": {"type": "plain_text", "text": "Reject"},
             "style": "danger", "value": run},
            {"type": "static_select", "action_id": "snooze",
             "placeholder": {"type": "plain_text", "text": "Snooze"},
             "options": [{"text": {"type": "plain_text", "text": f"{m} min"}, "value": str(m)}
                         for m in (15, 60)]},
        ]},
    ]


def reason_modal(channel: str, ts: str) -> dict[str, Any]:
    return {
        "type": "modal", "callback_id": REASON_MODAL, "notify_on_close": True,
        "private_metadata": json.dumps({"channel": channel, "ts": ts}),
        "title": {"type": "plain_text", "text": "Reject payment"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "blocks": [{"type": "input", "block_id": "reason", "label": {"type": "plain_text", "text": "Why?"},
                    "element": {"type": "plain_text_input", "action_id": "text", "multiline": True}}],
    }


def test_slash_command_is_acked_then_answered_in_channel_and_by_response_url(
        slack: EmulatorServer, bolt_app: App, driver_for: Callable[[App], Driver]) -> None:
    seen: list[dict[str, Any]] = []

    @bolt_app.command("/baton")
    def run(ack: Any, command: dict[str, Any], say: Any, respond: Any) -> None:
        ack(f"Starting {command['text']}")
        seen.append(command)
        say(f"<@{command['user_id']}> started {command['text']}")
        respond("You will be told in the thread.")

    delivery = driver_for(bolt_app).slash_command("run vendor-payment amount=12000", user=ALICE,
                                                   channel="payments")

    assert delivery.ok and delivery.acked_in_time
    ws = slack.workspace
    ws.wait_for(lambda w: len(w.ephemerals(ALICE)) == 2)
    # Two independent deliveries (the ack's HTTP answer, the POST to response_url) that
    # race, as they do at Slack: both arrive, in either order.
    assert sorted(e.text for e in ws.ephemerals(ALICE)) == [
        "Starting run vendor-payment amount=12000", "You will be told in the thread."]
    assert [m.text for m in ws.messages(PAYMENTS)] == [f"<@{ALICE}> started run vendor-payment amount=12000"]
    command = seen[0]
    assert (command["channel_id"], command["user_name"], command["command"]) == (PAYMENTS, "alice", "/baton")
    assert command["response_url"].startswith(f"{slack.url}/response/")
    assert len(slack.calls_to("response_url", ok=True)) == 1


def test_button_opens_a_modal_and_its_submission_updates_the_message(
        slack: EmulatorServer, bolt_app: App, driver_for: Callable[[App], Driver]) -> None:
    submissions: list[dict[str, Any]] = []

    @bolt_app.action("reject")
    def reject(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        client.views_open(trigger_id=body["trigger_id"],
                          view=reason_modal(body["container"]["channel_id"], body["message"]["ts"]))

    @bolt_app.view(REASON_MODAL)
    def reason(ack: Any, view: dict[str, Any], body: dict[str, Any], client: Any) -> None:
        text = view["state"]["values"]["reason"]["text"]["value"]
        if len(text) < 5:
            ack(response_action="errors", errors={"reason": "Say why in a few words."})
            return
        ack()
        submissions.append(body)
        where = json.loads(view["private_metadata"])
        client.chat_update(channel=where["channel"], ts=where["ts"],
                           text=f"Rejected by <@{body['user']['id']}>",
                           blocks=[{"type": "section",
                                    "text": {"type": "mrkdwn", "text": f"Rejected: {text}"}}])

    ws = slack.workspace
    gate = ws.post_message(PAYMENTS, text="Approve R-7?", blocks=gate_blocks("R-7"))
    driver = driver_for(bolt_app)

    assert driver.click(user=BOB, action_id="reject", channel=PAYMENTS, ts=gate.ts).ok
    modal = ws.wait_for(lambda w: w.modal_stack(BOB))[-1]
    assert modal.callback_id == REASON_MODAL and json.loads(modal.private_metadata)["ts"] == gate.ts
    assert slack.calls_to("views.open", ok=True)

    driver.submit_view(user=BOB, values={"reason": "no"})
    kept = ws.modal_stack(BOB)[-1]
    assert kept.id == modal.id and kept.errors == {"reason": "Say why in a few words."}

    driver.submit_view(user=BOB, values={"reason": "Vendor is not verified"})
    assert ws.modal_stack(BOB) == []
    updated = ws.wait_for(lambda w: w.message(PAYMENTS, gate.ts).edited and w.message(PAYMENTS, gate.ts))
    assert updated.text == f"Rejected by <@{BOB}>"
    assert updated.blocks[0]["text"]["text"] == "Rejected: Vendor is not verified"
    assert submissions[0]["view"]["state"]["values"]["reason"]["text"] == {
        "type": "plain_text_input", "value": "Vendor is not verified"}


def test_a_trigger_id_expires_after_three_seconds(slack: EmulatorServer, bolt_app: App, clock: Any,
                                                   driver_for: Callable[[App], Driver]) -> None:
    errors: list[str] = []

    @bolt_app.action("reject")
    def reject(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        clock.advance(3.5)  # the bot took too long
        try:
            client.views_open(trigger_id=body["trigger_id"], view=reason_modal(PAYMENTS, "1.0"))
        except SlackApiError as error:
            errors.append(error.response["error"])

    gate = slack.workspace.post_message(PAYMENTS, text="R-8", blocks=gate_blocks("R-8"))
    driver_for(bolt_app).click(user=BOB, action_id="reject", channel=PAYMENTS, ts=gate.ts)
    eventually(lambda: errors)
    assert errors == ["expired_trigger_id"]
    assert slack.workspace.modal_stack(BOB) == []


def test_selects_and_closing_a_modal_reach_the_app(slack: EmulatorServer, bolt_app: App,
                                                  driver_for: Callable[[App], Driver]) -> None:
    picked: list[dict[str, Any]] = []
    closed: list[dict[str, Any]] = []

    @bolt_app.action("snooze")
    def snooze(ack: Any, action: dict[str, Any], body: dict[str, Any], client: Any) -> None:
        ack()
        picked.append(action)
        client.views_open(trigger_id=body["trigger_id"], view=reason_modal(PAYMENTS, body["message"]["ts"]))

    @bolt_app.view_closed(REASON_MODAL)
    def on_close(ack: Any, body: dict[str, Any]) -> None:
        ack()
        closed.append(body)

    gate = slack.workspace.post_message(PAYMENTS, text="R-9", blocks=gate_blocks("R-9"))
    driver = driver_for(bolt_app)
    driver.choose("60", user=BOB, action_id="snooze", channel=PAYMENTS, ts=gate.ts)
    slack.workspace.wait_for(lambda w: w.modal_stack(BOB))
    assert picked[0]["selected_option"]["value"] == "60" and picked[0]["type"] == "static_select"

    delivery = driver.close_view(user=BOB)
    assert delivery is not None and delivery.ok
    assert closed[0]["type"] == "view_closed" and closed[0]["view"]["callback_id"] == REASON_MODAL
    assert slack.workspace.modal_stack(BOB) == []


def test_bad_or_stale_signatures_are_refused_by_bolt(slack: EmulatorServer, bolt_app: App,
                                                     driver_for: Callable[[App], Driver]) -> None:
    ran: list[str] = []

    @bolt_app.command("/baton")
    def run(ack: Any, command: dict[str, Any]) -> None:
        ack("ok")
        ran.append(command["text"])

    driver = driver_for(bolt_app)
    wrong = driver.slash_command("halt", user=ALICE, channel=PAYMENTS,
                                 signing=Signing(secret="not-the-secret"))
    stale = driver.slash_command("halt", user=ALICE, channel=PAYMENTS,
                                 signing=Signing(timestamp=int(time.time()) - 6 * 60))
    assert (wrong.status, stale.status) == (401, 401)
    assert ran == [] and slack.workspace.ephemerals(ALICE) == []
    assert driver.slash_command("status", user=ALICE, channel=PAYMENTS).ok
    assert ran == ["status"]


def test_events_mentions_dms_home_and_redelivery(slack: EmulatorServer, bolt_app: App,
                                                 driver_for: Callable[[App], Driver]) -> None:
    retries: list[Any] = []

    @bolt_app.event("app_mention")
    def mention(event: dict[str, Any], say: Any, request: Any) -> None:
        retries.append(request.headers.get("x-slack-retry-num"))
        say(text="pong", thread_ts=event["ts"])

    @bolt_app.event("message")
    def direct(event: dict[str, Any], say: Any) -> None:
        if event.get("channel_type") == "im":
            say(text=f"you said: {event['text']}")

    @bolt_app.event("app_home_opened")
    def home(event: dict[str, Any], client: Any) -> None:
        client.views_publish(user_id=event["user"], view={"type": "home", "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "*No pending approvals*"}}]})

    ws = slack.workspace
    driver = driver_for(bolt_app)
    assert driver.url_verification("abc123").json() == {"challenge": "abc123"}

    delivery = driver.mention("ping", user=ALICE, channel="payments")
    asked = ws.messages(PAYMENTS)[0]
    assert asked.text == f"<@{ws.app.bot_user_id}> ping" and asked.user == ALICE
    ws.wait_for(lambda w: len(w.replies(PAYMENTS, asked.ts)) == 2)
    assert ws.replies(PAYMENTS, asked.ts)[1].text == "pong"

    again = driver.redeliver(delivery, retry_num=1, reason="http_timeout")
    assert again.ok and again.request.body == delivery.request.body
    assert again.request.headers["X-Slack-Retry-Reason"] == "http_timeout"
    replayed = driver.replay(delivery)
    assert replayed.ok and replayed.request == delivery.request
    ws.wait_for(lambda w: len(w.replies(PAYMENTS, asked.ts)) == 4)
    assert retries == [None, ["1"], None]

    driver.direct_message("status", user=BOB)
    dm = ws.dm_of(BOB)
    assert dm is not None
    ws.wait_for(lambda w: len(w.messages(dm.id)) == 2)
    assert [m.text for m in ws.messages(dm.id)] == ["status", "you said: status"]

    driver.open_home(user=BOB)
    home_view = ws.wait_for(lambda w: w.home(BOB))
    assert home_view.blocks[0]["text"]["text"] == "*No pending approvals*"
