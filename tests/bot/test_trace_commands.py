"""`/baton trace` and `/baton stats` in Slack."""

import json

from tests.bot.conftest import ALICE, BOB, DAVE, PAYMENTS, Baton


def approved_run(baton: Baton) -> None:
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=20000", user=ALICE, channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    baton.driver.click(user=BOB, action_id="gate.decide.approve", channel=PAYMENTS, ts=gate.ts)
    baton.submit(BOB, {"reason": "Invoice matches PO 4471"})
    baton.settle()


def test_trace_replies_with_the_summary(baton: Baton) -> None:
    approved_run(baton)
    reply = baton.driver.slash_command("trace R-1", user=ALICE, channel=PAYMENTS)
    body = json.dumps(reply.json(), ensure_ascii=False)
    assert reply.json()["response_type"] == "ephemeral"
    assert "R-1 · vendor-payment · succeeded" in body
    assert "Bob Ortiz chose approve: \\\"Invoice matches PO 4471\\\"" in body
    assert "amount-limit: passed" in body and "research: ok" in body


def test_trace_full_uploads_json_and_markdown(baton: Baton) -> None:
    approved_run(baton)
    baton.driver.slash_command("trace R-1 full", user=ALICE, channel=PAYMENTS)
    baton.settle()
    files = baton.slack.workspace.files()
    names = sorted(f.name for f in files)
    assert names == ["R-1-trace.json", "R-1-trace.md"]
    exported = json.loads(next(f for f in files if f.name.endswith(".json")).content)
    assert exported["run"]["id"] == "R-1" and exported["verification"]["ok"]


def test_trace_lists_and_filters_runs(baton: Baton) -> None:
    approved_run(baton)
    mine = json.dumps(baton.driver.slash_command("trace", user=ALICE, channel=PAYMENTS).json())
    assert "Your recent runs" in mine and "*R-1*" in mine
    decided = json.dumps(baton.driver.slash_command(
        "trace --flow vendor-payment --since 7d --decided-by <@U0BOB0001>", user=ALICE,
        channel=PAYMENTS).json())
    assert "*R-1*" in decided
    nobody = json.dumps(baton.driver.slash_command("trace --decided-by @carol", user=ALICE,
                                                   channel=PAYMENTS).json())
    assert "No runs match" in nobody


def test_stats_reply_and_chart(baton: Baton) -> None:
    approved_run(baton)
    reply = baton.driver.slash_command("stats vendor-payment --since 7d", user=ALICE, channel=PAYMENTS)
    body = json.dumps(reply.json(), ensure_ascii=False)
    assert "Baton stats · vendor-payment" in body and "Runs: 1 (succeeded 1)" in body
    assert "100% approved" in body
    baton.settle()
    (chart,) = baton.slack.workspace.files()
    assert chart.name == "baton-stats.png" and chart.content[:4] == b"\x89PNG"


def test_trace_reads_in_time_order_with_a_mark_and_a_time_per_fact(baton: Baton) -> None:
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=20000", user=ALICE, channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    # two refused clicks before the decision: Dave is not an approver, Alice asked for it
    baton.driver.click(user=DAVE, action_id="gate.decide.approve", channel=PAYMENTS, ts=gate.ts)
    baton.driver.click(user=ALICE, action_id="gate.decide.approve", channel=PAYMENTS, ts=gate.ts)
    baton.settle()
    baton.driver.click(user=BOB, action_id="gate.decide.approve", channel=PAYMENTS, ts=gate.ts)
    baton.submit(BOB, {"reason": "Invoice matches PO 4471"})
    baton.settle()

    blocks = baton.driver.slash_command("trace R-1", user=ALICE, channel=PAYMENTS).json()["blocks"]
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"] == ":white_check_mark: R-1 · vendor-payment · succeeded"
    overview = [f["text"] for f in blocks[1]["fields"]]
    assert "*Requested by*\n<@U0ALICE01>" in overview
    assert "*State*\n:white_check_mark: succeeded (completed)" in overview
    assert any(b["type"] == "section" and [f["text"] for f in b.get("fields", [])] == ["vendor: ACME",
                                                                                     "amount: 20,000"]
               for b in blocks)
    # one context line per fact: its mark (as the gate cards draw it), its time, what happened
    lines = [(b["elements"][0]["text"], b["elements"][-1]["text"]) for b in blocks if b["type"] == "context"]
    gate_lines = [(mark, text) for mark, text in lines
                  if "REFUSED" in text or "chose approve" in text or text.startswith("↳ outcome")]
    assert [text.split(" ")[1] for _, text in gate_lines] == ["REFUSED", "REFUSED", "Bob", "outcome:"]
    assert [mark.split(" ")[0] for mark, _ in gate_lines] == [
        ":no_entry_sign:", ":no_entry_sign:", ":white_check_mark:", ":white_check_mark:"]
    times = [mark.split("*")[1] for mark, _ in gate_lines[:3]]
    assert times == sorted(times)  # refused first, as they happened
    assert gate_lines[-1][1].startswith("↳ outcome: approved by Bob Ortiz (after ")
    assert any(mark.startswith(":large_green_circle: *") and text.startswith("research: ok")
               for mark, text in lines)
    assert any(mark.startswith(":white_check_mark: *") and text.startswith("amount-limit: passed")
               for mark, text in lines)
    body = json.dumps(blocks, ensure_ascii=False)
    assert "(approve) by" not in body and "attempt(s)" not in body and "20000.0" not in body
