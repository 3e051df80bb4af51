"""response_url: what Slack does with what an app POSTs to the URL it handed out."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from slack_sdk import WebClient

from sandbox import Driver, EmulatorServer
from tests.sandbox.conftest import ALICE, BOB, PAYMENTS, Clock, RecordingBot

BUTTON = [{"type": "actions", "elements": [
    {"type": "button", "action_id": "dismiss", "value": "x", "text": {"type": "plain_text", "text": "OK"}}]}]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False) as client:
        yield client


def command_url(raw_driver: Driver, recording_bot: RecordingBot) -> str:
    raw_driver.slash_command("status", user=ALICE, channel=PAYMENTS)
    return recording_bot.payload()["response_url"]


def click_url(raw_driver: Driver, recording_bot: RecordingBot, ts: str) -> str:
    raw_driver.click(user=ALICE, action_id="dismiss", channel=PAYMENTS, ts=ts)
    return recording_bot.payload()["response_url"]


def test_slash_command_responses_are_ephemeral_unless_in_channel(slack: EmulatorServer, http: httpx.Client,
                                                                  recording_bot: RecordingBot,
                                                                  raw_driver: Driver) -> None:
    url = command_url(raw_driver, recording_bot)
    parent = slack.workspace.post_message(PAYMENTS, text="R-1 started")
    assert http.post(url, json={"text": "Only you see this"}).json() == {"ok": True}
    http.post(url, json={"response_type": "in_channel", "text": "In the thread", "thread_ts": parent.ts})
    assert [e.text for e in slack.workspace.ephemerals(ALICE, PAYMENTS)] == ["Only you see this"]
    assert slack.workspace.replies(PAYMENTS, parent.ts)[-1].text == "In the thread"


def test_a_response_url_works_five_times_within_thirty_minutes(slack: EmulatorServer, http: httpx.Client,
                                                               clock: Clock, recording_bot: RecordingBot,
                                                               raw_driver: Driver) -> None:
    url = command_url(raw_driver, recording_bot)
    for i in range(5):
        assert http.post(url, json={"text": str(i)}).status_code == 200
    used = http.post(url, json={"text": "sixth"})
    assert (used.status_code, used.json()["error"]) == (404, "used_url")

    fresh = command_url(raw_driver, recording_bot)
    clock.advance(31 * 60)
    expired = http.post(fresh, json={"text": "late"})
    assert (expired.status_code, expired.json()["error"]) == (404, "expired_url")
    assert len(slack.workspace.ephemerals(ALICE)) == 5


def test_replace_and_delete_the_message_a_button_was_in(slack: EmulatorServer, client: WebClient,
                                                        http: httpx.Client, recording_bot: RecordingBot,
                                                        raw_driver: Driver) -> None:
    message = client.chat_postMessage(channel=PAYMENTS, text="Gate", blocks=BUTTON)
    url = click_url(raw_driver, recording_bot, message["ts"])
    http.post(url, json={"replace_original": True, "text": "Approved by Alice"})
    replaced = slack.workspace.message(PAYMENTS, message["ts"])
    assert replaced.text == "Approved by Alice" and replaced.blocks == ()
    http.post(url, json={"delete_original": True})
    assert slack.workspace.messages(PAYMENTS) == []


def test_replace_and_delete_an_ephemeral_message(slack: EmulatorServer, client: WebClient, http: httpx.Client,
                                                 recording_bot: RecordingBot, raw_driver: Driver) -> None:
    posted = client.chat_postEphemeral(channel=PAYMENTS, user=ALICE, text="Unknown flow", blocks=BUTTON)
    ts = posted["message_ts"]
    url = click_url(raw_driver, recording_bot, ts)
    assert recording_bot.payload()["container"]["is_ephemeral"] is True
    http.post(url, json={"replace_original": "true", "text": "Fixed"})
    assert [e.text for e in slack.workspace.ephemerals(ALICE)] == ["Fixed"]
    http.post(url, json={"delete_original": "true"})
    assert slack.workspace.ephemerals(ALICE) == []
    assert slack.workspace.ephemerals(BOB) == []


def test_a_refused_or_faulted_response_changes_nothing(slack: EmulatorServer, http: httpx.Client,
                                                       recording_bot: RecordingBot,
                                                       raw_driver: Driver) -> None:
    url = command_url(raw_driver, recording_bot)
    too_long = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    bad = http.post(url, json={"blocks": [too_long]})
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_blocks")
    assert http.post(url, json={}).json()["error"] == "no_text"
    slack.faults.next("response_url", status=500)
    assert http.post(url, json={"text": "lost"}).status_code == 500
    assert http.post(f"{slack.url}/response/nope", json={"text": "x"}).status_code == 404
    assert slack.workspace.ephemerals(ALICE) == []
    assert [c.status for c in slack.calls_to("response_url")] == [400, 400, 500, 404]
