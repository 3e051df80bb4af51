"""Policy that an approver's edits, a conflict's choice or the requester cannot get around,
driven through the `baton` command as people use it (issues 21 and 24)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Baton, InProcess
from tests.conftest import TEST_FLOWS


@pytest.fixture
def cli_tests(tmp_path: Path, database_url: str) -> InProcess:
    return InProcess(tmp_path, TEST_FLOWS, database_url)


def trace(baton: Baton, ref: str = "R-1") -> list[dict]:
    result = baton("trace", ref, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["entries"]


def rechecks(entries: list[dict]) -> list[dict]:
    return [e["data"] for e in entries if e["kind"] == "boundary" and "recheck" in e["data"]]


# -- issue 21.1: an approver's edits pass policy again -------------------------------------------
def test_an_edit_past_a_stop_boundary_before_the_gate_is_refused_and_changes_nothing(
        cli: InProcess) -> None:
    """The issue's example: the 50,000 limit comes before the gate in vendor-payment."""
    baton = cli
    assert baton("run", "vendor-payment", "vendor=ACME", "amount=20000", "--as", "alice").returncode == 0
    refused = baton("decide", "R-1", "approve", "--as", "bob", "--reason", "x",
                    "--edit", "amount=9999999")
    assert refused.returncode == 2
    assert "boundary 'amount-limit'" in refused.stderr and "nothing was changed" in refused.stderr
    assert "Payments above 50,000" in refused.stderr
    status = baton("status", "R-1").stdout
    assert "amount=20,000" in status and "waiting at gate 'approve'" in status
    assert baton.entries() == []  # never paid
    entries = trace(baton)
    (check,) = rechecks(entries)
    assert check["boundary"] == "amount-limit" and check["passed"] is False
    assert check["values"] == {"inputs.amount": 9999999.0} and check["result"] == "violated"
    assert check["recheck"] == {"gate": "approve", "by": "bob", "edited": ["amount"]}
    assert entries[-1]["kind"] == "decision_refused" and entries[-1]["actor"] == "bob"
    assert "decision" not in [e["kind"] for e in entries]
    assert "re-check: amount edited by Bob Ortiz at 'approve'" in baton("trace", "R-1").stdout
    # a permitted edit still goes through, is re-checked, and pays what was approved
    done = baton("decide", "R-1", "approve", "--as", "carol", "--reason", "milestone 1",
                 "--edit", "amount=45000")
    assert done.returncode == 0, done.stderr
    assert [e["amount"] for e in baton.entries()] == [45000.0]


def test_an_edit_after_a_request_for_changes_is_checked_the_same(cli: InProcess) -> None:
    cli("run", "vendor-payment", "vendor=ACME", "amount=20000", "--as", "alice")
    assert cli("decide", "R-1", "request_changes", "--as", "carol", "--reason", "PO?").returncode == 0
    again = cli("decide", "R-1", "approve", "--as", "bob", "--reason", "x", "--edit", "amount=50000.01")
    assert again.returncode == 2 and "amount-limit" in again.stderr
    assert cli("decide", "R-1", "approve", "--as", "bob", "--reason", "x",
               "--edit", "amount=-5").returncode == 2  # the input's own min still holds
    assert cli.entries() == []


def test_an_edit_breaking_a_boundary_further_on_is_refused_at_the_gate(cli_tests: InProcess) -> None:
    cli = cli_tests
    cli("run", "edit-recheck", "amount=15000", "--as", "alice")
    ahead = cli("decide", "R-1", "approve", "--as", "bob", "--edit", "urgent=true")
    assert ahead.returncode == 2 and "boundary 'urgent-cap'" in ahead.stderr
    denied = cli("decide", "R-1", "approve", "--as", "bob", "--edit", "vendor=BLOCKED-CO")
    assert denied.returncode == 2 and "BLOCKED-CO is on the deny list" in denied.stderr
    assert "amount=15,000, vendor=ACME, urgent=False" in cli("status", "R-1").stdout
    assert cli.entries() == []


def test_an_edit_that_needs_more_than_this_gate_goes_to_the_people_policy_names(
        cli_tests: InProcess) -> None:
    """1,000 -> 60,000: past the escalating limit (the CFO allows it once) and past the
    CFO gate that was skipped at 1,000. The editor decides neither."""
    cli = cli_tests
    cli("run", "edit-recheck", "amount=1000", "--as", "alice")
    decided = cli("decide", "R-1", "approve", "--as", "bob", "--edit", "amount=60000")
    assert decided.returncode == 0, decided.stderr
    assert "break boundary 'amount-limit'" in decided.stdout
    status = cli("status", "R-1").stdout
    assert "waiting at gate 'amount-limit' (boundary)" in status and "can decide: Erin Park" in status
    assert cli.entries() == []
    own = cli("reassign", "R-1", "--to", "bob", "--as", "erin")
    assert own.returncode == 2 and "made the edit" in own.stderr
    assert cli("decide", "R-1", "approve", "--as", "erin", "--reason", "Board approved").returncode == 0
    status = cli("status", "R-1").stdout
    assert "waiting at gate 'cfo' (approval)" in status and cli.entries() == []
    assert cli("decide", "R-1", "approve", "--as", "erin").returncode == 0
    assert [e["inputs"]["amount"] for e in cli.entries()] == [60000.0]
    entries = trace(cli)
    opened = [e["data"] for e in entries if e["kind"] == "gate_opened"]
    assert [(o["gate"], o["kind"]) for o in opened] == [
        ("approve", "approval"), ("amount-limit", "boundary"), ("cfo", "approval")]
    assert all(o["recheck"]["by"] == "bob" for o in opened[1:])
    checked = rechecks(entries)
    assert {(c["boundary"], c["result"]) for c in checked} == {
        ("amount-limit", "violated"), ("amount-limit", "allowed"), ("vendor-allowed", "passed"),
        ("urgent-cap", "passed")}


def test_an_edit_one_approver_proposes_is_checked_again_when_another_settles_it(
        cli_tests: InProcess) -> None:
    cli = cli_tests
    cli("run", "edit-quorum", "amount=10000", "--as", "alice")
    refused = cli("decide", "R-1", "approve", "--as", "bob", "--edit", "amount=60000")
    assert refused.returncode == 2 and "boundary 'hard-limit'" in refused.stderr
    proposed = cli("decide", "R-1", "approve", "--as", "bob", "--edit", "amount=30000")
    assert proposed.returncode == 0 and "1 of 2 approvals" in proposed.stdout
    assert cli("decide", "R-1", "approve", "--as", "dave").returncode == 0
    status = cli("status", "R-1").stdout
    assert "waiting at gate 'review-limit' (boundary)" in status
    assert "can decide: Carol Diaz, Erin Park" in status  # not Bob, whose edit it is
    mine = cli("decide", "R-1", "approve", "--as", "bob", "--reason", "mine")
    assert mine.returncode == 2 and "because of your edit" in mine.stderr
    assert cli.entries() == []
    assert cli("decide", "R-1", "approve", "--as", "carol", "--reason", "Seen").returncode == 0
    assert [e["inputs"]["amount"] for e in cli.entries()] == [30000.0]


# -- issue 24.1: a conflict choice must matter ----------------------------------------------------
def test_following_a_warning_puts_the_payment_before_an_approver(cli: InProcess) -> None:
    """The issue's example: TEST-CO, 500. Following research's warning used to say
    Approved and pay; now it opens the approval gate, whatever its `when`."""
    cli("run", "vendor-payment", "vendor=TEST-CO", "amount=500", "--as", "alice")
    assert "waiting at gate 'signals' (conflict)" in cli("status", "R-1").stdout
    chose = cli("decide", "R-1", "follow_research", "--as", "frank",
                "--reason", "TEST-CO is a test vendor; do not pay")
    assert chose.returncode == 0, chose.stderr
    assert "follows research (warn), chosen by Frank Li" in chose.stdout
    assert "gate 'approve' must approve before the run goes on" in chose.stdout
    assert "approved" not in chose.stdout.lower()
    status = cli("status", "R-1").stdout
    assert "waiting at gate 'approve' (approval)" in status and cli.entries() == []
    assert cli("decide", "R-1", "reject", "--as", "carol", "--reason", "Test vendor").returncode == 0
    assert "rejected" in cli("status", "R-1").stdout and cli.entries() == []
    (opened,) = [e["data"] for e in trace(cli) if e["kind"] == "gate_opened"
                 and e["data"]["gate"] == "approve"]
    assert opened["required_by"] == {"conflict": "signals", "winner": "research", "verdict": "warn",
                                     "by": "frank", "reason": "TEST-CO is a test vendor; do not pay"}


def test_following_an_ok_signal_lets_the_gate_decide_and_a_block_stops(cli: InProcess) -> None:
    cli("run", "vendor-payment", "vendor=TEST-CO", "amount=500", "--as", "alice")
    chose = cli("decide", "R-1", "follow_compliance", "--as", "frank", "--reason", "Known vendor")
    assert "the run continues" in chose.stdout
    assert "succeeded" in cli("status", "R-1").stdout  # 500 and risk ok: no approval needed
    assert [e["vendor"] for e in cli.entries()] == ["TEST-CO"]


def test_a_conflict_whose_result_nothing_uses_is_refused(cli: InProcess, tmp_path: Path) -> None:
    flow = tmp_path / "unused.yaml"
    flow.write_text("""name: unused
agents:
  a: {kind: rules, rules: [{when: "true", verdict: ok}]}
  b: {kind: rules, rules: [{when: "true", verdict: block}]}
steps:
  - parallel: [a, b]
  - conflict: {id: pick, among: [a, b], deciders: "role:risk-lead",
               then: {block: continue, warn: continue}}
  - action: {id: pay, call: "examples.actions:send_payment"}
""")
    result = cli("flows", "validate", str(flow))
    assert result.returncode == 2
    assert "steps[1].conflict.then: this conflict's result is never used" in result.stderr
    flow.write_text(flow.read_text().replace("then: {block: continue, warn: continue}", "then: {}"))
    result = cli("flows", "validate", str(flow))
    assert result.returncode == 2
    assert ("following warn or no signal at all opens the next gate (the default), but a "
            "action step (pay) comes first") in result.stderr


# -- issue 24.3: the requester is not an approver where four-eyes applies -------------------------
def test_the_requester_is_neither_listed_nor_pending_nor_counted(cli: InProcess) -> None:
    cli("run", "vendor-payment", "vendor=ACME", "amount=20000", "--as", "bob")
    assert "can decide: Carol Diaz;" in cli("status", "R-1").stdout
    assert "0 pending for Bob Ortiz" in cli("status", "--as", "bob").stdout
    assert "1 pending for Carol Diaz" in cli("status", "--as", "carol").stdout
    stats = cli("stats", "--json")
    assert json.loads(stats.stdout)["pending_by_approver"] == {"carol": 1}
    for option in ("approve", "reject", "request_changes"):
        refused = cli("decide", "R-1", option, "--as", "bob", "--reason", "mine")
        assert refused.returncode == 2 and "four-eyes" in refused.stderr
    assert cli("claim", "R-1", "--as", "bob").returncode == 2
    assert cli("snooze", "R-1", "15m", "--as", "bob").returncode == 2


# -- issue 24.2 and 21.10: claims and snoozes only move the next step later ------------------------
def _deadline(status: str) -> str:
    line = next(x for x in status.splitlines() if "escalation chain" in x or "next step" in x)
    return line.rsplit("next step ", 1)[1]


def test_a_snooze_never_shortens_the_deadline_and_keeps_a_claim(cli_tests: InProcess) -> None:
    cli = cli_tests
    cli("run", "escalating", "--as", "alice")
    first = _deadline(cli("status", "R-1").stdout)
    snoozed = cli("snooze", "R-1", "15m", "--as", "bob")
    assert snoozed.returncode == 0 and "next step at" in snoozed.stdout
    status = cli("status", "R-1").stdout
    assert _deadline(status) == first and "snoozed until" in status  # 15m < the 30m left
    assert cli("claim", "R-1", "--as", "carol").returncode == 0
    claimed = _deadline(cli("status", "R-1").stdout)
    assert claimed > first  # the 1h claim moves it later
    again = cli("snooze", "R-1", "15m", "--as", "carol")
    assert "Carol Diaz still holds the claim" in again.stdout
    status = cli("status", "R-1").stdout
    assert _deadline(status) == claimed and "claimed by Carol Diaz" in status
