"""Modals through the Web API: trigger ids, the view stack, hashes and validation."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox import EmulatorServer
from tests.sandbox.conftest import BOB, Clock


def modal(title: str = "Reject R-1", **extra: object) -> dict:
    return {"type": "modal", "title": {"type": "plain_text", "text": title},
            "close": {"type": "plain_text", "text": "Cancel"},
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Why?"}}], **extra}


def api_error(call: object) -> str:
    with pytest.raises(SlackApiError) as raised:
        call()  # type: ignore[operator]
    return raised.value.response["error"]


def test_views_open_needs_a_fresh_unused_trigger(slack: EmulatorServer, client: WebClient,
                                                 clock: Clock) -> None:
    ws = slack.workspace
    trigger = ws.issue_trigger(BOB)
    opened = client.views_open(trigger_id=trigger, view=modal(callback_id="reason", private_metadata="R-1"))
    view = opened["view"]
    assert (view["callback_id"], view["private_metadata"], view["type"]) == ("reason", "R-1", "modal")
    assert view["root_view_id"] == view["id"] and view["app_id"] == ws.app.app_id
    assert [v.id for v in ws.modal_stack(BOB)] == [view["id"]]

    assert api_error(lambda: client.views_open(trigger_id=trigger, view=modal())) == "exchanged_trigger_id"
    unknown = "123.456.abc"
    assert api_error(lambda: client.views_open(trigger_id=unknown, view=modal())) == "invalid_trigger_id"
    late = ws.issue_trigger(BOB)
    clock.advance(3.01)
    assert api_error(lambda: client.views_open(trigger_id=late, view=modal())) == "expired_trigger_id"
    assert len(ws.modal_stack(BOB)) == 1


def test_invalid_views_are_refused_with_slacks_messages(slack: EmulatorServer, client: WebClient) -> None:
    trigger = slack.workspace.issue_trigger(BOB)
    with pytest.raises(SlackApiError) as raised:
        client.views_open(trigger_id=trigger, view=modal(title="A title that is far too long"))
    response = raised.value.response
    assert response["error"] == "invalid_arguments"
    assert response["response_metadata"]["messages"] == [
        "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]"]
    no_submit = modal(blocks=[{"type": "input", "label": {"type": "plain_text", "text": "Why"},
                               "element": {"type": "plain_text_input", "action_id": "why"}}])
    assert api_error(lambda: client.views_open(trigger_id=trigger, view=no_submit)) == "invalid_arguments"
    # A refused view does not use up the trigger.
    assert client.views_open(trigger_id=trigger, view=modal())["ok"]


def test_push_update_and_the_stack_limit(slack: EmulatorServer, client: WebClient) -> None:
    ws = slack.workspace
    root = client.views_open(trigger_id=ws.issue_trigger(BOB), view=modal(external_id="gate-R-1"))["view"]
    pushed = client.views_push(trigger_id=ws.issue_trigger(BOB), view=modal("Step 2"))["view"]
    client.views_push(trigger_id=ws.issue_trigger(BOB), view=modal("Step 3"))
    assert pushed["previous_view_id"] == root["id"] and pushed["root_view_id"] == root["id"]
    assert api_error(lambda: client.views_push(trigger_id=ws.issue_trigger(BOB), view=modal("Step 4"))) == \
        "push_limit_reached"

    updated = client.views_update(external_id="gate-R-1", view=modal("Decided"), hash=root["hash"])["view"]
    assert updated["id"] == root["id"] and updated["title"]["text"] == "Decided"
    assert api_error(lambda: client.views_update(view_id=root["id"], view=modal(), hash=root["hash"])) == \
        "hash_conflict"
    assert api_error(lambda: client.views_update(view_id="V0NOPE", view=modal())) == "not_found"
    assert [v.title["text"] for v in ws.modal_stack(BOB)] == ["Decided", "Step 2", "Step 3"]  # type: ignore[index]
