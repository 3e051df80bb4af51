"""The Web API through the real slack_sdk WebClient: what it stores and what it answers."""

from __future__ import annotations

import json

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox import EmulatorServer
from tests.sandbox.conftest import ALICE, BOB, CAROL, PAYMENTS


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def test_post_update_and_thread_messages(slack: EmulatorServer, client: WebClient) -> None:
    posted = client.chat_postMessage(channel=PAYMENTS, text="Gate: approve R-1?", blocks=[section("*R-1*")],
                                     metadata={"event_type": "gate_opened", "event_payload": {"run": "R-1"}})
    assert posted["channel"] == PAYMENTS
    assert posted["message"]["bot_id"] == slack.workspace.app.bot_id
    client.chat_postMessage(channel="#payments", text="first reply", thread_ts=posted["ts"])
    reply = client.chat_postMessage(channel=PAYMENTS, text="second reply", thread_ts=posted["ts"])
    # A reply's ts as thread_ts still lands in the parent's thread, as in Slack.
    nested = client.chat_postMessage(channel=PAYMENTS, text="third", thread_ts=reply["ts"])
    assert nested["message"]["thread_ts"] == posted["ts"]

    updated = client.chat_update(channel=PAYMENTS, ts=posted["ts"], text="Approved by Bob",
                                 blocks=[section("Approved by <@U0BOB0001>")])
    assert updated["message"]["edited"]["user"] == slack.workspace.app.bot_user_id

    stored = slack.workspace.message(PAYMENTS, posted["ts"])
    assert stored.text == "Approved by Bob"
    assert stored.history[0].text == "Gate: approve R-1?"
    assert stored.metadata == {"event_type": "gate_opened", "event_payload": {"run": "R-1"}}

    history = client.conversations_history(channel=PAYMENTS, include_all_metadata=True)
    assert [m["ts"] for m in history["messages"]] == [posted["ts"]]  # replies stay in the thread
    assert history["messages"][0]["reply_count"] == 3
    assert history["messages"][0]["metadata"]["event_type"] == "gate_opened"
    replies = client.conversations_replies(channel=PAYMENTS, ts=posted["ts"])
    assert [m["text"] for m in replies["messages"]] == ["Approved by Bob", "first reply", "second reply",
                                                        "third"]

    client.chat_delete(channel=PAYMENTS, ts=nested["ts"])
    assert len(slack.workspace.replies(PAYMENTS, posted["ts"])) == 3


def test_ts_are_unique_and_increasing_when_the_clock_stands_still(slack: EmulatorServer,
                                                                  client: WebClient) -> None:
    stamps = [client.chat_postMessage(channel=PAYMENTS, text=str(i))["ts"] for i in range(5)]
    assert len(set(stamps)) == 5
    assert stamps == sorted(stamps, key=float)
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)


def test_direct_messages_and_ephemeral_messages(slack: EmulatorServer, client: WebClient) -> None:
    opened = client.conversations_open(users=BOB)
    again = client.conversations_open(users=BOB)
    assert opened["channel"]["id"].startswith("D")
    assert again["channel"]["id"] == opened["channel"]["id"] and again["already_open"] is True
    by_user_id = client.chat_postMessage(channel=BOB, text="You have a pending approval")
    assert by_user_id["channel"] == opened["channel"]["id"]
    assert client.conversations_info(channel=by_user_id["channel"])["channel"]["is_im"] is True

    ephemeral = client.chat_postEphemeral(channel=PAYMENTS, user=CAROL, text="Only you can see this")
    assert ephemeral["message_ts"]
    assert [e.text for e in slack.workspace.ephemerals(CAROL)] == ["Only you can see this"]
    assert slack.workspace.ephemerals(BOB) == []
    assert slack.workspace.messages(PAYMENTS) == []

    group = client.conversations_open(users=f"{BOB},{CAROL}", return_im=True)
    assert group["channel"]["is_mpim"] is True


def test_people_and_user_groups(slack: EmulatorServer, client: WebClient) -> None:
    alice = client.users_info(user=ALICE)["user"]
    assert (alice["name"], alice["real_name"], alice["is_bot"]) == ("alice", "Alice Ng", False)
    assert client.users_lookupByEmail(email="alice@example.com")["user"]["id"] == ALICE
    assert client.usergroups_users_list(usergroup="S0FINANCE1")["users"] == [BOB, CAROL]
    names = {m["name"] for m in client.users_list()["members"]}
    assert {"alice", "bob", "carol", "nobody", "baton"} <= names
    with pytest.raises(SlackApiError) as error:
        client.users_info(user="U0NOBODY9")
    assert error.value.response["error"] == "user_not_found"
    with pytest.raises(SlackApiError) as error:
        client.usergroups_users_list(usergroup="S0NOPE")
    assert error.value.response["error"] == "no_such_subteam"


def test_pagination_with_cursors(client: WebClient) -> None:
    for i in range(5):
        client.chat_postMessage(channel=PAYMENTS, text=f"m{i}")
    seen = []
    for page in client.conversations_history(channel=PAYMENTS, limit=2):
        seen += [m["text"] for m in page["messages"]]
    assert seen == ["m4", "m3", "m2", "m1", "m0"]


def test_app_home_is_published_per_user(slack: EmulatorServer, client: WebClient) -> None:
    home = {"type": "home", "blocks": [section("*Pending approvals*: none")]}
    first = client.views_publish(user_id=ALICE, view=home)["view"]
    second = client.views_publish(user_id=ALICE, view={**home, "blocks": [section("*Pending*: R-1")]},
                                  hash=first["hash"])["view"]
    assert second["id"] == first["id"] and second["hash"] != first["hash"]
    assert slack.workspace.home(ALICE).blocks[0]["text"]["text"] == "*Pending*: R-1"  # type: ignore[union-attr]
    assert slack.workspace.home(BOB) is None
    with pytest.raises(SlackApiError) as error:
        client.views_publish(user_id=ALICE, view=home, hash=first["hash"])
    assert error.value.response["error"] == "hash_conflict"


def test_files_upload_v2_shares_the_file_in_a_thread(slack: EmulatorServer, client: WebClient) -> None:
    parent = client.chat_postMessage(channel=PAYMENTS, text="R-1 trace")
    uploaded = client.files_upload_v2(channel=PAYMENTS, content='{"run": "R-1"}', filename="R-1.json",
                                      title="Trace of R-1", initial_comment="Full trace",
                                      thread_ts=parent["ts"])
    file_id = uploaded["file"]["id"]
    assert slack.workspace.file(file_id).content == b'{"run": "R-1"}'
    shared = slack.workspace.replies(PAYMENTS, parent["ts"])[-1]
    assert shared.text == "Full trace" and shared.files[0]["title"] == "Trace of R-1"
    assert slack.calls.methods()[-3:] == ["files.getUploadURLExternal", "upload_url",
                                          "files.completeUploadExternal"]
    assert client.files_info(file=file_id)["file"]["name"] == "R-1.json"


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
@pytest.mark.parametrize(("kwargs", "error"), [
    ({"channel": "C0UNKNOWN", "text": "x"}, "channel_not_found"),
    ({"channel": "", "text": "x"}, "channel_not_found"),
    ({"channel": PAYMENTS}, "no_text"),
    ({"channel": PAYMENTS, "text": "x" * 40_001}, "msg_too_long"),
    ({"channel": PAYMENTS, "blocks": [section("x")] * 51}, "invalid_blocks"),
    ({"channel": PAYMENTS, "blocks": [section("x" * 3001)]}, "invalid_blocks"),
    ({"channel": PAYMENTS, "blocks": [{"type": "bogus"}]}, "invalid_blocks"),
    ({"channel": PAYMENTS, "blocks": "[not json"}, "invalid_blocks_format"),
    ({"channel": PAYMENTS, "text": "x", "thread_ts": "1.000001"}, "thread_not_found"),
])
def test_post_message_is_refused_as_slack_refuses_it(slack: EmulatorServer, client: WebClient, kwargs: dict,
                                                     error: str) -> None:
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(**kwargs)
    assert raised.value.response.status_code == 200
    assert raised.value.response["error"] == error
    assert slack.workspace.messages() == []
    assert slack.calls_to("chat.postMessage")[-1].error == error


def test_invalid_blocks_say_where(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel=PAYMENTS, text="x", blocks=[section("ok"), section("x" * 3001)])
    response = raised.value.response
    assert response["errors"] == ["must be less than 3001 characters [json-pointer:/blocks/1/text/text]"]
    assert response["response_metadata"]["messages"][0].startswith("[ERROR] must be less than 3001")


def test_tokens_are_checked(slack: EmulatorServer) -> None:
    for token, error in ((None, "not_authed"), ("xoxb-wrong", "invalid_auth"),
                         (slack.workspace.app.app_token, "not_allowed_token_type")):
        with pytest.raises(SlackApiError) as raised:
            WebClient(token=token, base_url=slack.api_url).chat_postMessage(channel=PAYMENTS, text="x")
        assert raised.value.response["error"] == error
    app_client = WebClient(token=slack.workspace.app.app_token, base_url=slack.api_url)
    assert app_client.apps_connections_open(app_token=slack.workspace.app.app_token)["url"].startswith("ws://")
    assert slack.workspace.messages() == []


def test_form_and_json_bodies_and_unknown_methods(slack: EmulatorServer) -> None:
    token = slack.workspace.app.bot_token
    with httpx.Client(trust_env=False, base_url=slack.api_url) as http:
        form = http.post("chat.postMessage", data={"token": token, "channel": PAYMENTS, "text": "form",
                                                   "blocks": json.dumps([section("form")])}).json()
        as_json = http.post("chat.postMessage", headers={"Authorization": f"Bearer {token}"},
                            json={"channel": PAYMENTS, "text": "json", "blocks": [section("json")]}).json()
        unknown = http.post("chat.teleport", headers={"Authorization": f"Bearer {token}"})
    assert form["ok"] and "warning" not in form
    assert as_json["ok"] and as_json["warning"] == "missing_charset"  # no charset on a JSON body
    assert [m.text for m in slack.workspace.messages(PAYMENTS)] == ["form", "json"]
    assert unknown.status_code == 200
    assert unknown.json() == {"ok": False, "error": "unknown_method", "req_method": "chat.teleport"}
    recorded = slack.calls_to("chat.postMessage")[0]
    assert recorded.args["blocks"] == [section("form")] and "token" not in recorded.args
    assert recorded.token == token and recorded.status == 200 and recorded.ok
