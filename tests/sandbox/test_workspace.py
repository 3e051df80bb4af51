"""The workspace itself: peopled from the org file, and observable by tests and a UI."""

from __future__ import annotations

import threading

import pytest

from gates.org import Org
from sandbox import ApiError, Workspace
from sandbox.records import Change
from tests.sandbox.conftest import ALICE, BOB, CAROL, PAYMENTS


def test_the_org_files_people_groups_and_channels_exist(workspace: Workspace, org: Org) -> None:
    assert workspace.user(ALICE).real_name == "Alice Ng"
    assert workspace.user(ALICE).email == "alice@example.com"
    nobody = workspace.find_user("nobody")
    assert nobody is not None and nobody.id.startswith("U")
    assert workspace.usergroup("S0FINANCE1").members == (BOB, CAROL)
    assert workspace.channel(PAYMENTS).name == "payments"
    assert workspace.find_channel("#finance-escalations") is not None
    assert workspace.find_channel("general") is not None
    bot = workspace.user(workspace.app.bot_user_id)
    assert bot.is_bot and bot.bot_id == workspace.app.bot_id
    # Every Slack id the org file names resolves in the sandbox.
    for key in org.data.users:
        slack_id = org.slack_id(key)
        if slack_id:
            assert workspace.user(slack_id).name == key


def test_wait_for_wakes_on_a_change_made_by_another_thread(workspace: Workspace) -> None:
    timer = threading.Timer(0.02, lambda: workspace.post_message(PAYMENTS, text="from the bot"))
    timer.start()
    found = workspace.wait_for(lambda ws: ws.messages(PAYMENTS), timeout=2)
    assert found[0].text == "from the bot"
    with pytest.raises(TimeoutError):
        workspace.wait_for(lambda ws: ws.ephemerals(ALICE), timeout=0.01)


def test_changes_can_be_polled_and_streamed(workspace: Workspace) -> None:
    seen: list[Change] = []
    unsubscribe = workspace.subscribe(seen.append)
    start = workspace.version
    message = workspace.post_message(PAYMENTS, text="one")
    workspace.update_message(PAYMENTS, message.ts, text="two")
    workspace.open_dm(BOB)
    unsubscribe()
    workspace.post_message(PAYMENTS, text="unseen")
    assert [(c.kind, c.key) for c in seen] == [("message", f"{PAYMENTS}/{message.ts}"),
                                                ("message", f"{PAYMENTS}/{message.ts}"),
                                                ("channel", workspace.dm_of(BOB).id)]  # type: ignore[union-attr]
    polled = workspace.changes_since(start)
    assert [c.version for c in polled] == list(range(start + 1, start + 5))


def test_a_refused_change_changes_nothing(workspace: Workspace) -> None:
    version = workspace.version
    with pytest.raises(ApiError, match="thread_not_found"):
        workspace.post_message(PAYMENTS, text="orphan", thread_ts="1.000001")
    with pytest.raises(ApiError, match="cant_update_message"):
        posted = workspace.post_message(PAYMENTS, text="mine", author=ALICE)
        workspace.update_message(PAYMENTS, posted.ts, text="the bot cannot edit this")
    assert workspace.version == version + 1
    assert [m.text for m in workspace.messages(PAYMENTS)] == ["mine"]
