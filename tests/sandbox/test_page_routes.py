"""The sandbox page's HTTP side: what a person does on the page reaches the app as the
signed request Slack would send, and only the loopback page can ask."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox import EmulatorServer, signature
from sandbox.ui.routes import typed_to_slack
from tests.sandbox.conftest import ALICE, BOB, PAYMENTS, RecordingBot


@pytest.fixture
def page(slack: EmulatorServer, recording_endpoint: tuple[RecordingBot, str],
         recording_bot: RecordingBot) -> Iterator[httpx.Client]:
    slack.connect(recording_endpoint[1])
    with httpx.Client(base_url=slack.url, trust_env=False, timeout=5) as client:
        yield client
    slack.connect(None)


def act(page: httpx.Client, path: str, **body: Any) -> dict[str, Any]:
    answer = page.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_page_is_served_to_browsers_with_a_strict_policy_and_api_clients_get_json(
        slack: EmulatorServer) -> None:
    html = httpx.get(slack.url, headers={"Accept": "text/html"}, trust_env=False)
    assert html.status_code == 200 and "<title>Baton sandbox</title>" in html.text
    assert "script-src 'self'" in html.headers["content-security-policy"]
    assert httpx.get(slack.url, trust_env=False).json()["api_url"] == slack.api_url
    script = httpx.get(f"{slack.url}/_ui/static/sandbox.js", trust_env=False)
    assert script.headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{slack.url}/_ui/static/..%2Fapp.py", trust_env=False).status_code == 404


def test_only_the_loopback_page_may_act(page: httpx.Client, recording_bot: RecordingBot) -> None:
    rebound = page.get("/_ui/state", headers={"Host": "evil.example"})
    assert rebound.status_code == 403
    foreign = page.post("/_ui/command", json={"as": "alice", "text": "/baton help"},
                        headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    form = page.post("/_ui/command", content=b"as=alice&text=/baton+help",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    assert recording_bot.received == []


def test_a_typed_command_is_a_signed_slash_command_and_its_answer_is_ephemeral(
        page: httpx.Client, slack: EmulatorServer, recording_bot: RecordingBot) -> None:
    recording_bot.answer_json({"text": "ok <b>", "blocks": [{"type": "section",
                                                             "text": {"type": "mrkdwn", "text": "done"}}]})
    typed = {"as": "alice", "in": "payments", "text": "/baton run flow note=<a & b>"}
    assert act(page, "/_ui/command", **typed) == {"ok": True, "status": 200}
    headers, body = recording_bot.received[0]
    secret = slack.workspace.app.signing_secret
    assert headers["x-slack-signature"] == signature(secret, headers["x-slack-request-timestamp"], body)
    sent = recording_bot.payload()
    assert sent["command"] == "/baton" and sent["user_id"] == ALICE and sent["channel_id"] == PAYMENTS
    assert sent["text"] == "run flow note=&lt;a &amp; b&gt;"  # as Slack escapes a command's text
    (ephemeral,) = slack.workspace.ephemerals(ALICE)
    assert ephemeral.text == "ok <b>"
    state = page.get("/_ui/state", params={"as": "alice", "in": "payments"}).json()
    assert "Only visible to you" in state["main"] and "done" in state["main"]
    others = page.get("/_ui/state", params={"as": "bob", "in": PAYMENTS}).json()
    assert "Only visible to you" not in others["main"]

    unknown = act(page, "/_ui/command", **{"as": "alice", "in": "payments", "text": "/deploy"})
    assert unknown["ok"] is False and "/deploy is not a valid command" in unknown["error"]
    assert len(recording_bot.received) == 1


def test_the_bots_refusal_or_silence_is_said_on_the_page(page: httpx.Client, slack: EmulatorServer,
                                                         recording_bot: RecordingBot) -> None:
    from starlette.responses import Response

    recording_bot.answers.append(Response("bad signature", status_code=401))
    refused = act(page, "/_ui/command", **{"as": "alice", "in": "payments", "text": "/baton help"})
    assert refused == {"ok": False, "status": 401, "error": "the bot answered HTTP 401: bad signature"}
    slack.connect(None)
    nobody = page.post("/_ui/command", json={"as": "alice", "in": "payments", "text": "/baton help"})
    assert nobody.status_code == 409 and "no bot is connected" in nobody.json()["error"]


def test_clicks_picks_and_submissions_are_block_actions_and_view_submissions(
        page: httpx.Client, slack: EmulatorServer, recording_bot: RecordingBot) -> None:
    ws = slack.workspace
    message = ws.post_message(PAYMENTS, text="gate", blocks=[{"type": "actions", "block_id": "b1",
                                                              "elements": [
        {"type": "button", "action_id": "go", "value": "v1", "text": {"type": "plain_text", "text": "Go"}},
        {"type": "static_select", "action_id": "pick", "placeholder": {"type": "plain_text", "text": "…"},
         "options": [{"text": {"type": "plain_text", "text": "Fifteen"}, "value": "900"}]}]}])
    act(page, "/_ui/action", **{"as": "bob", "action_id": "go", "kind": "button", "value": "v1",
                                "block_id": "b1", "channel": PAYMENTS, "ts": message.ts})
    clicked = recording_bot.payload()
    assert clicked["type"] == "block_actions" and clicked["user"]["id"] == BOB
    action = clicked["actions"][0]
    assert (action["action_id"], action["value"], action["block_id"]) == ("go", "v1", "b1")
    assert clicked["container"]["message_ts"] == message.ts and clicked["response_url"]
    act(page, "/_ui/action", **{"as": "bob", "action_id": "pick", "kind": "static_select", "chosen": "900",
                                "block_id": "b1", "channel": PAYMENTS, "ts": message.ts})
    assert recording_bot.payload()["actions"][0]["selected_option"]["value"] == "900"

    view = ws.open_modal(BOB, {"type": "modal", "callback_id": "gate.reason",
                               "title": {"type": "plain_text", "text": "Why"},
                               "submit": {"type": "plain_text", "text": "Go"},
                               "blocks": [{"type": "input", "block_id": "reason", "label": {
                                   "type": "plain_text", "text": "Why?"}, "element": {
                                   "type": "plain_text_input", "action_id": "reason_input"}}]})
    recording_bot.answer_json({"response_action": "errors", "errors": {"reason": "Say more"}})
    act(page, "/_ui/submit", **{"as": "bob", "view": view.id, "values": {"reason": "  "}})
    submitted = recording_bot.payload()
    assert submitted["type"] == "view_submission"
    assert submitted["view"]["state"]["values"]["reason"]["reason_input"]["value"] == "  "
    assert ws.view(view.id).errors == {"reason": "Say more"}
    modal = page.get("/_ui/state", params={"as": "bob"}).json()["modal"]
    assert "Say more" in modal["html"]
    empty = act(page, "/_ui/submit", **{"as": "bob", "view": view.id, "values": {"reason": None}})
    assert empty["ok"] is False and "is required" in empty["error"]
    act(page, "/_ui/submit", **{"as": "bob", "view": view.id, "values": {"reason": "Because"}})
    assert ws.modal_stack(BOB) == []


def test_messages_dms_and_mentions(page: httpx.Client, slack: EmulatorServer,
                                   recording_bot: RecordingBot) -> None:
    ws = slack.workspace
    act(page, "/_ui/message", **{"as": "alice", "in": "payments", "text": "hi @bob & #payments"})
    assert recording_bot.received == []  # a plain message is not the app's business
    (said,) = ws.messages(PAYMENTS)
    assert said.user == ALICE and said.text == f"hi <@{BOB}> &amp; <#{PAYMENTS}|payments>"
    act(page, "/_ui/message", **{"as": "alice", "in": "payments", "text": "@baton status", "thread": said.ts})
    mention = recording_bot.payload()["event"]
    assert mention["type"] == "app_mention" and mention["thread_ts"] == said.ts
    act(page, "/_ui/message", **{"as": "alice", "in": "dm", "text": "flows"})
    dm = recording_bot.payload()["event"]
    assert dm["channel_type"] == "im" and dm["text"] == "flows"
    act(page, "/_ui/home", **{"as": "bob"})
    assert recording_bot.payload()["event"]["type"] == "app_home_opened"


def test_typed_text_becomes_what_slacks_client_sends(slack: EmulatorServer) -> None:
    ws = slack.workspace
    bot = ws.app.bot_user_id
    assert typed_to_slack(ws, "@baton run x <y>") == f"<@{bot}> run x &lt;y&gt;"
    assert typed_to_slack(ws, "mail a@bob.com @nobodyknown @here") == "mail a@bob.com @nobodyknown <!here>"


def test_the_event_stream_says_when_the_workspace_changes(page: httpx.Client, slack: EmulatorServer) -> None:
    seen: list[dict[str, Any]] = []
    ready = threading.Event()

    def listen() -> None:
        with httpx.Client(base_url=slack.url, trust_env=False, timeout=5) as client, \
                client.stream("GET", "/_ui/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                    ready.set()
                    if len(seen) == 2:
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(5)
    slack.workspace.post_message(PAYMENTS, text="news")
    listener.join(5)
    assert len(seen) == 2 and seen[1]["version"] > seen[0]["version"]


def test_the_call_log_lists_every_web_api_call(page: httpx.Client, slack: EmulatorServer) -> None:
    token = slack.workspace.app.bot_token
    httpx.post(f"{slack.api_url}chat.postMessage", data={"channel": PAYMENTS, "text": "<hi>"},
               headers={"Authorization": f"Bearer {token}"}, trust_env=False)
    slack.faults.next("chat.update", status=429)
    httpx.post(f"{slack.api_url}chat.update", data={"channel": PAYMENTS, "ts": "1.0", "text": "x"},
               headers={"Authorization": f"Bearer {token}"}, trust_env=False)
    rows = page.get("/_ui/calls").json()
    assert rows["calls"] == 2
    assert "chat.postMessage" in rows["html"] and "&#x27;&lt;hi&gt;&#x27;" in rows["html"]
    assert "fault: HTTP 429 (Retry-After: 1)" in rows["html"]
    assert page.get("/_ui/calls", params={"since": 1}).json()["html"].count('class="call') == 1
    exported = page.get("/_calls.json").json()
    assert [c["method"] for c in exported["calls"]] == ["chat.postMessage", "chat.update"]
    assert "<title>" in page.get("/_calls", headers={"Accept": "text/html"}).text
