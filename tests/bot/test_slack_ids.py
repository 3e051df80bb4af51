"""Names from a flow file fit the Slack ids built from them (issue 21, item 7): at the longest
the loader accepts, every action_id and block_id stays within 255 characters and every button
value within 2,000, so Slack (here the emulator, which refuses what Slack refuses) takes the
messages and a click decides the gate. Longer names are refused by `baton flows validate`
(tests/cli/test_flow_guards.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from orchestrator.spec import MAX_NAME
from sandbox.blockkit import block_errors, view_errors
from tests.bot.conftest import ALICE, BOB, FRANK, PAYMENTS, Baton


def longest(stem: str, sep: str = "_") -> str:
    return (stem + sep + "x" * MAX_NAME)[:MAX_NAME]


FLOW = longest("long-names", "-")
AMOUNT, CALM, WORRIED = longest("amount"), longest("calm"), longest("worried")
STEP, CONFLICT, GATE, OPTION = (longest("assess", "-"), longest("signals", "-"),
                                longest("approve", "-"), longest("approve_with_conditions"))

FLOW_FILE = f"""\
name: {FLOW}
inputs:
  {AMOUNT}: {{type: number, required: true}}
agents:
  {CALM}: {{kind: rules, rules: [{{when: "true", verdict: ok, summary: "Nothing unusual"}}]}}
  {WORRIED}: {{kind: rules, rules: [{{when: "true", verdict: warn, severity: medium,
                                      summary: "Unusual amount"}}]}}
steps:
  - parallel: {{id: {STEP}, agents: [{CALM}, {WORRIED}]}}
  - conflict: {{id: {CONFLICT}, among: [{CALM}, {WORRIED}], on_disagreement: ask,
                deciders: "role:risk-lead"}}
  - gate:
      id: {GATE}
      approvers: "role:finance-approver"
      options:
        - {{id: {OPTION}, label: "Approve with conditions", effect: approve}}
        - reject
      reason_required: [{OPTION}]
      editable: [{AMOUNT}]
"""


def slack_ids(blocks: list[dict]) -> list[tuple[str, int]]:
    found = []
    for block in blocks:
        if "block_id" in block:
            found.append(("block_id", len(block["block_id"])))
        for element in [*block.get("elements", []), block.get("element") or {}]:
            if isinstance(element, dict) and "action_id" in element:
                found.append(("action_id", len(element["action_id"])))
                found.append(("value", len(element.get("value", ""))))
    return found


def test_the_longest_names_make_messages_slack_takes_and_buttons_that_decide(
        make_baton: Callable[..., Baton], tmp_path: Path) -> None:
    (tmp_path / "long.yaml").write_text(FLOW_FILE)
    baton = make_baton(tmp_path)
    reply = baton.driver.slash_command(f"run {FLOW} {AMOUNT}=1200", user=ALICE, channel=PAYMENTS)
    assert reply.status == 200
    baton.settle()

    conflict = baton.gate_message()
    assert not block_errors(list(conflict.blocks))
    follow = f"gate.decide.follow_{WORRIED}"
    assert follow in json.dumps(conflict.blocks)
    baton.driver.click(user=FRANK, action_id=follow, channel=PAYMENTS, ts=conflict.ts)
    baton.submit(FRANK, {"reason": "The amount is unusual for this vendor"})
    baton.settle()

    card = baton.run_card()
    gate = next(m for m in reversed(baton.thread(card)) if f"gate.decide.{OPTION}" in json.dumps(m.blocks))
    assert not block_errors(list(gate.blocks))
    assert all(length <= (2000 if kind == "value" else 255) for kind, length in slack_ids(gate.blocks))

    baton.driver.click(user=BOB, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
    edit = baton.modal(BOB)
    assert not view_errors({"type": "modal", "title": edit.title, "submit": edit.submit,
                            "blocks": list(edit.blocks), "callback_id": edit.callback_id,
                            "private_metadata": edit.private_metadata})
    assert f"edit:{AMOUNT}" in [b.get("block_id") for b in edit.blocks]
    baton.driver.close_view(user=BOB)

    baton.driver.click(user=BOB, action_id=f"gate.decide.{OPTION}", channel=PAYMENTS, ts=gate.ts)
    reason = baton.modal(BOB)
    assert json.loads(reason.private_metadata)["o"] == OPTION
    baton.submit(BOB, {"reason": "Only after the PO is signed"})
    baton.settle()
    run = baton.engine.get_run("R-1")
    assert run.status == "succeeded", run.reason
