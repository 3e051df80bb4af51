"""The sandbox page's drawing: Slack text and Block Kit as escaped HTML, without a browser."""

from __future__ import annotations

import json

import pytest

from bot.blocks import button, confirm_dialog, static_select
from bot.render.gates import GateView, gate_message
from bot.render.modals import edit_modal, reason_modal
from orchestrator.loader import load_org
from sandbox import Workspace
from sandbox.ui import pages
from sandbox.ui.blocks import Surface, blocks_html
from sandbox.ui.mrkdwn import Names, mrkdwn_html, plain_html
from tests.conftest import EXAMPLE_FLOWS

NAMES = Names(user={"U1": "Bob Ortiz"}.get, channel={"C1": "payments"}.get, group={"S1": "finance-team"}.get,
              viewer="U1")


@pytest.mark.parametrize(("text", "html"), [
    ("*Requested by* <@U1>", '<b>Requested by</b> <span class="mention me" data-user="U1">@Bob Ortiz</span>'),
    ("_*both*_ ~gone~ snake_case_name", "<i><b>both</b></i> <s>gone</s> snake_case_name"),
    ("flow `vendor-payment`", "flow <code><span class=\"w\">vendor-payment</span></code>"),
    ("```a *b*\n&lt;c&gt;```after", "<pre>a *b*\n&lt;c&gt;</pre>after"),
    ("<#C1> <!subteam^S1> <!here>", '<span class="mention channel" data-channel="C1">#payments</span> '
                                   '<span class="mention group">@finance-team</span> '
                                   '<span class="mention special">@here</span>'),
    ("<!date^1700000000^{date_short_pretty}|2023-11-14 22:13 UTC>",
     '<time class="date" title="2023-11-14T22:13:20+00:00">2023-11-14 22:13 UTC</time>'),
    ("<https://example.com/x?a=1&amp;b=2|the *docs*>",
     '<a href="https://example.com/x?a=1&amp;b=2" target="_blank" rel="noopener noreferrer nofollow">'
     "the *docs*</a>"),
    (":white_check_mark: :x: :rotating_light: :no_such_emoji:", "\u2705 \u274c \U0001f6a8 :no_such_emoji:"),
    ("> quoted\n&gt; typed", "<blockquote>quoted</blockquote><br>&gt; typed"),
])
def test_mrkdwn(text: str, html: str) -> None:
    assert mrkdwn_html(text, NAMES) == html


def test_text_the_bot_escaped_stays_text_and_nothing_becomes_markup() -> None:
    hostile = ("&lt;!channel&gt; &lt;@U1&gt; &lt;script&gt;alert(1)&lt;/script&gt; <javascript:alert(1)|x> "
               "<img src=x onerror=alert(1)> \u202etxt.exe \ue0000\ue001")
    shown = mrkdwn_html(hostile, NAMES)
    assert "<script" not in shown and "<img" not in shown and "<a " not in shown and "mention" not in shown
    assert "&lt;!channel&gt;" in shown and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "&lt;javascript:alert(1)|x&gt;" in shown
    assert "[U+202E]txt.exe" in shown  # a direction override is shown, not obeyed
    assert "\ue000" not in shown  # the page's own placeholders cannot be forged
    assert plain_html('&lt;b&gt;"quoted" &amp; :x:\nnext') == \
        "&lt;b&gt;&quot;quoted&quot; &amp; \u274c<br>next"
    assert plain_html(":x:", emoji=False) == ":x:"


def _gate(**extra: object) -> GateView:
    values: dict = dict(id=7, key="approve", kind="approval", run="R-1", requester="alice",
                        title="Approve <b>payment</b>?", question="", approvers=["bob", "carol"], quorum=1,
                        status="open", shown={"inputs": {"vendor": "<script>x</script>", "amount": 20000.0},
                                              "signals": [], "boundaries": []},
                        options=[{"id": "approve", "label": "Approve", "effect": "approve",
                                  "style": "primary", "reason_required": True},
                                 {"id": "reject", "label": "Reject", "effect": "reject", "style": "danger"}],
                        chain="finance-chain", levels=3, snooze=[900.0, 3600.0])
    values.update(extra)
    return GateView(**values)


def test_a_gate_message_as_the_bot_renders_it() -> None:
    org = load_org(EXAMPLE_FLOWS / "org.yaml")
    message = gate_message(org, _gate(), dm=True)
    shown = blocks_html(message["blocks"], Surface(names=Names(
        user={"U0ALICE01": "Alice Ng", "U0BOB0001": "Bob Ortiz", "U0CAROL01": "Carol Diaz"}.get,
        channel=lambda _: None, group=lambda _: None)))
    assert "<h3>Approve &lt;b&gt;payment&lt;/b&gt;?</h3>" in shown
    assert '<div class="fields"><div class="field"><b>Run</b> R-1' in shown
    assert "vendor: &lt;script&gt;x&lt;/script&gt;" in shown and "amount: 20,000" in shown
    assert '@Bob Ortiz</span>, <span class="mention" data-user="U0CAROL01">@Carol Diaz</span>' in shown
    # buttons keep their action_id, value and style; Reject asks first
    assert ('<button type="button" class="bk-button primary" data-action="gate.decide.approve" '
            'data-kind="button" data-value="{&quot;g&quot;:7,&quot;o&quot;:&quot;approve&quot;}">') in shown
    assert 'class="bk-button danger" data-action="gate.decide.reject"' in shown
    assert ('<template class="confirm"><div class="dialog confirm-dialog" role="dialog">'
            "<h2>Reject?</h2>") in shown
    assert 'data-block="gate-7-v0"' in shown and 'data-block="esc-7-v0"' in shown
    # the snooze menu: a select with a disabled placeholder and the options' values
    assert ('<select class="bk-control bk-select" data-action="gate.snooze" '
            'data-kind="static_select">') in shown
    assert ('<option value="" disabled selected>Snooze…</option>'
            '<option value="7:900">Snooze 15m</option>') in shown


def test_modals_draw_inputs_with_what_was_typed_and_the_apps_errors() -> None:
    gate = _gate(editable=["amount"])
    reason = reason_modal(gate, gate.options[0], {"c": "C1"})
    state = {"values": {"reason": {"reason_input": {"type": "plain_text_input", "value": "typed <b>"}}}}
    shown = blocks_html(reason["blocks"], Surface(state=state, errors={"reason": "Please say why"}))
    assert '<div class="bk-field" data-input="reason">' in shown  # required: no data-optional
    assert ('<textarea class="bk-control" rows="4" data-action="reason_input" data-kind="plain_text_input" '
            'placeholder="Say why, for the people who read the trace later" maxlength="2000">typed &lt;b&gt;'
            "</textarea>") in shown
    assert '<div class="error from-app" role="alert">Please say why</div>' in shown

    edit = edit_modal(gate, {"amount": 20000.0}, {"amount": "number"}, {}, False)
    shown = blocks_html(edit["blocks"], Surface())
    assert ('<input class="bk-control" type="number" data-action="value" data-kind="number_input" step="any" '
            'value="20000">') in shown
    assert 'data-input="reason" data-optional' in shown and "(optional)" in shown


def test_what_the_page_cannot_draw_is_shown_as_json_never_dropped() -> None:
    blocks = [{"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": []}]},
              {"type": "actions", "elements": [button("Go", "go", "1"),
                                               {"type": "workflow_button", "x": "<y>"}]},
              {"type": "section", "text": {"type": "weird", "text": "?"}}]
    shown = blocks_html(blocks, Surface())
    assert "block type &#x27;rich_text&#x27; is not drawn by the sandbox: shown as JSON" in shown
    assert "&quot;rich_text_section&quot;" in shown
    assert "element type &#x27;workflow_button&#x27;" in shown and "&lt;y&gt;" in shown
    assert "text type &#x27;weird&#x27;" in shown
    assert 'data-action="go"' in shown


def test_selects_of_people_and_channels_and_a_confirm_on_a_plain_button() -> None:
    blocks = [{"type": "actions", "block_id": "b", "elements": [
        {"type": "users_select", "action_id": "who", "initial_user": "U2"},
        button("Stop", "stop", "x", style="danger",
               confirm=confirm_dialog("Stop?", "Really <stop>?", "Stop")),
        static_select("Pick", "pick", [("One", "1"), ("Two", "2")]),
    ]}]
    shown = blocks_html(blocks, Surface(users=[("U1", "Alice"), ("U2", "Bob")]))
    assert '<option value="U2" selected>Bob</option>' in shown
    assert "Really &lt;stop&gt;?" in shown
    assert '<option value="2">Two</option>' in shown


def test_pages_show_ephemerals_only_to_their_person_and_keep_dms_private() -> None:
    ws = Workspace()
    alice, bob = ws.add_user("alice", real_name="Alice"), ws.add_user("bob", real_name="Bob")
    channel = ws.add_channel("payments")
    ws.post_message(channel.id, text=f"hello <@{bob.id}>")
    ws.post_ephemeral(channel.id, alice.id, text="just for alice")
    assert "just for alice" in pages.conversation_html(ws, channel, alice.id)
    assert "just for alice" not in pages.conversation_html(ws, channel, bob.id)
    mine = f'<span class="mention me" data-user="{bob.id}">@Bob</span>'
    assert mine in pages.conversation_html(ws, channel, bob.id)
    alice_dm = ws.open_dm(alice.id)
    # asking for someone else's DM gives your own Messages tab (empty here), never theirs
    assert pages.resolve_place(ws, bob.id, alice_dm.id) == (pages.DM, None)
    assert pages.resolve_place(ws, alice.id, "payments") == (channel.id, channel)
    assert pages.resolve_place(ws, alice.id, "nowhere")[1] == channel


def test_the_modal_key_changes_when_the_app_changes_the_view_not_while_people_type() -> None:
    ws = Workspace()
    alice = ws.add_user("alice")
    view = ws.open_modal(alice.id, {"type": "modal", "title": {"type": "plain_text", "text": "T"},
                                    "blocks": [], "submit": {"type": "plain_text", "text": "Go"}})
    first = pages.modal(ws, alice.id)
    assert first is not None and f'data-view="{view.id}"' in first["html"]
    ws.set_view_state(view.id, {"values": {}}, errors={"reason": "no"})
    second = pages.modal(ws, alice.id)
    assert second is not None and second["key"] != first["key"]
    assert json.dumps({"reason": "no"}, sort_keys=True) in second["key"]
    ws.close_modal(alice.id)
    assert pages.modal(ws, alice.id) is None
