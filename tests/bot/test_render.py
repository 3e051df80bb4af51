"""Renderers are pure: domain state in, Block Kit out, always within Slack's limits."""

import json
from datetime import UTC, datetime

from bot.blocks import MAX_BLOCKS, clean, clip, esc
from bot.render.gates import GateView, gate_message
from bot.render.home import home_view
from bot.render.runs import run_card
from sandbox.blockkit import block_errors
from tests.bot.conftest import ORG

HUGE = "<!channel> " + "x" * 12_000


def gate(**kw) -> GateView:  # type: ignore[no-untyped-def]
    base = dict(id=7, key="approve", kind="approval", run="R-9", requester="alice",
                title="Approve vendor payment?", question="", approvers=["bob", "carol"], quorum=1,
                status="open", shown={"inputs": {"vendor": "ACME", "amount": 20000.0},
                                      "signals": [], "boundaries": []},
                options=[{"id": "approve", "label": "Approve", "effect": "approve", "style": "primary"},
                         {"id": "reject", "label": "Reject", "effect": "reject", "style": "danger"}])
    base.update(kw)
    return GateView(**base)  # type: ignore[arg-type]


def test_escaping_and_cleaning() -> None:
    assert esc("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert clean("ok\u202eevil\u200b\x07 \U0001F469\u200d\U0001F4BB") == "okevil \U0001F469\u200d\U0001F4BB"
    assert clean("bad \udcff utf-8") == "bad  utf-8"
    assert clip("a" * 10, 5) == "aaaa…" and clip("abc &amp;", 8) == "abc …"


def test_a_gate_with_everything_huge_stays_within_slacks_limits() -> None:
    signals = [{"agent": f"agent{i}", "verdict": "warn", "severity": "high", "summary": HUGE}
               for i in range(60)]
    view = gate(title=HUGE, question=HUGE,
                shown={"inputs": {f"in{i}": HUGE for i in range(20)}, "signals": signals,
                       "boundaries": [{"boundary": "b" * 300, "passed": False}] * 30},
                options=[{"id": f"o{i}", "label": "L" * 200, "effect": "approve"} for i in range(30)])
    message = gate_message(ORG, view)
    assert len(message["blocks"]) <= MAX_BLOCKS
    assert block_errors(message["blocks"]) == []
    assert len(message["text"]) <= 3000
    assert message["blocks"][-1]["type"] == "actions"  # the buttons are never cut off
    assert "48 more signals: `/baton trace R-9`" in json.dumps(message["blocks"])


def test_decided_gate_replaces_buttons_with_who_when_and_why() -> None:
    view = gate(status="decided", outcome_effect="approve", outcome_option="approve",
                decided_by=["bob"], decided_at=datetime(2026, 1, 5, 9, 12, tzinfo=UTC),
                decisions=[{"by": "bob", "option": "approve", "effect": "approve",
                            "reason": "Invoice <matches> PO", "edits": {}}])
    message = gate_message(ORG, view)
    shown = json.dumps(message["blocks"], ensure_ascii=False)
    assert not any(b["type"] == "actions" for b in message["blocks"])
    assert "*Approved* by <@U0BOB0001> · 2026-01-05 09:12 UTC" in shown
    assert "Invoice &lt;matches&gt; PO" in shown
    assert block_errors(message["blocks"]) == []


def test_reject_asks_for_confirmation_unless_a_reason_modal_follows() -> None:
    message = gate_message(ORG, gate())
    buttons = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert "confirm" in buttons[1] and "confirm" not in buttons[0]
    with_reason = gate(options=[{"id": "reject", "label": "Reject", "effect": "reject",
                                 "reason_required": True}])
    (button,) = [e for b in gate_message(ORG, with_reason)["blocks"] if b["type"] == "actions"
                 for e in b["elements"]]
    assert "confirm" not in button


def test_run_card_and_home_are_valid_blocks() -> None:
    card = run_card(ORG, ref="R-1", flow="vendor-payment", title="Vendor payment", requester="alice",
                    inputs={"vendor": HUGE}, status="waiting")
    assert block_errors(card["blocks"]) == []
    home = home_view(ORG, "bob", [gate(id=i) for i in range(40)], [])
    assert len(home["blocks"]) <= 100 and block_errors(home["blocks"]) == []


def test_the_door_a_run_was_asked_through_and_runs_stored_before_it_was_recorded() -> None:
    from gates.access import through
    from orchestrator.kinds import KINDS, line

    before = {"kind": "api", "token": "billing-bot", "token_id": 3, "principal": "alice"}
    cards = {door: json.dumps(run_card(ORG, ref="R-1", flow="f", title="T", requester="alice",
                                       inputs={}, status="running",
                                       origin={**before, "through": door} if door else before))
             for door in (None, "api", "mcp-stdio", "mcp-http")}
    assert "API token `billing-bot`" in cards[None] and "MCP" not in cards[None]
    assert cards["api"] == cards[None]  # the field changes nothing for the API's runs
    assert "through MCP (stdio)" in cards["mcp-stdio"] and "token `billing-bot`" in cards["mcp-stdio"]
    assert "through MCP (HTTP)" in cards["mcp-http"] and "API token" not in cards["mcp-http"]
    started = {"flow": "f", "version": "1", "inputs": {}, "origin": before}
    assert "through the API (token billing-bot)" in line("run_started", started, "alice", ORG)
    mcp = {**started, "requester": "alice", "origin": {**before, "through": "mcp-http"}}
    assert KINDS["run_started"].console(mcp, "alice", ORG).endswith(
        "by Alice Ng through MCP (HTTP) (token billing-bot)")
    assert through(before) == "api" and through({"kind": "slack", "channel": "C1"}) is None
    slack = {**started, "origin": {"kind": "slack", "channel": "C1", "through": "mcp-http"}}
    assert "through" not in line("run_started", slack, "alice", ORG)  # no token, no door
