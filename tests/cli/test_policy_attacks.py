"""Attacks on edits re-checked, four-eyes and conflict choices, through the `baton` command
as an approver, a requester or an agent would try them (issues 21 and 24). Each test is a
way around the policy that used to work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.conftest import InProcess
from tests.conftest import EXAMPLE_FLOWS, TEST_FLOWS


@pytest.fixture
def cli_tests(tmp_path: Path, database_url: str) -> InProcess:
    return InProcess(tmp_path, TEST_FLOWS, database_url)


def entries(cli: InProcess, kind: str, ref: str = "R-1") -> list[dict]:
    result = cli("trace", ref, "--json")
    assert result.returncode == 0, result.stderr
    return [e["data"] for e in json.loads(result.stdout)["entries"] if e["kind"] == kind]


# -- an editor deciding what their own edit made necessary -----------------------------------------
def test_the_editor_decides_neither_the_gate_nor_the_boundary_further_on_that_their_edit_needs(
        cli_tests: InProcess) -> None:
    """Bob may decide `large` and `limit` (finance approver), and both come after the gate he
    edits. 1,000 -> 60,000 makes both apply; he used to approve the one and allow the other
    himself, and 60,000 was paid on his word alone."""
    cli = cli_tests
    cli("run", "edit-ahead", "amount=1000", "--as", "alice")
    assert cli("decide", "R-1", "approve", "--as", "bob", "--edit", "amount=60000").returncode == 0
    assert "waiting at gate 'large'" in cli("status", "R-1").stdout
    assert "can decide: Carol Diaz, Erin Park;" in cli("status", "R-1").stdout
    for option in ("approve", "reject"):
        mine = cli("decide", "R-1", option, "--as", "bob")
        assert mine.returncode == 2 and "because of values you edited" in mine.stderr
    assert cli("claim", "R-1", "--as", "bob").returncode == 2
    assert cli("decide", "R-1", "approve", "--as", "carol").returncode == 0
    status = cli("status", "R-1").stdout
    assert "waiting at gate 'limit' (boundary)" in status and "can decide: Carol Diaz, Erin Park;" in status
    mine = cli("decide", "R-1", "approve", "--as", "bob", "--reason", "my own call")
    assert mine.returncode == 2 and "because of values you edited" in mine.stderr
    assert cli("reassign", "R-1", "--to", "bob", "--as", "erin").returncode == 2
    assert cli.entries() == []
    assert cli("decide", "R-1", "approve", "--as", "erin", "--reason", "Board approved").returncode == 0
    assert [e["inputs"]["amount"] for e in cli.entries()] == [60000.0]
    opened = {o["gate"]: o for o in entries(cli, "gate_opened")}
    assert opened["large"]["edited_by"] == ["bob"] and opened["limit"]["edited_by"] == ["bob"]
    assert "because of values edited by Bob Ortiz, who do not decide it" in cli("trace", "R-1").stdout


def test_an_editor_still_decides_what_the_requested_values_needed_anyway(cli_tests: InProcess) -> None:
    """Barring is for what the edit alone made necessary: 25,000 needed `large` already."""
    cli = cli_tests
    cli("run", "edit-ahead", "amount=25000", "--as", "alice")
    assert cli("decide", "R-1", "approve", "--as", "bob", "--edit", "amount=30000").returncode == 0
    assert "can decide: Bob Ortiz, Carol Diaz, Erin Park;" in cli("status", "R-1").stdout
    assert cli("decide", "R-1", "approve", "--as", "bob").returncode == 0
    assert [e["inputs"]["amount"] for e in cli.entries()] == [30000.0]


def test_a_gate_approved_for_other_values_approves_the_edited_ones(cli_tests: InProcess) -> None:
    """The CFO approves 25,000 (her gate applies above 20,000). Bob, at the next gate, edits it
    to 49,000, within every boundary: it used to be paid on the CFO's approval of 25,000."""
    cli = cli_tests
    cli("run", "edit-recheck", "amount=25000", "--as", "alice")
    assert cli("decide", "R-1", "approve", "--as", "erin").returncode == 0
    edited = cli("decide", "R-1", "approve", "--as", "bob", "--edit", "amount=49000")
    assert edited.returncode == 0, edited.stderr
    assert "gate 'cfo' approved other values" in edited.stdout
    assert "waiting at gate 'cfo' (approval)" in cli("status", "R-1").stdout and cli.entries() == []
    assert cli("decide", "R-1", "approve", "--as", "erin").returncode == 0
    assert [e["inputs"]["amount"] for e in cli.entries()] == [49000.0]
    # an edit of what the CFO's `when` does not read, or below her threshold, needs her no more
    cli("run", "edit-recheck", "amount=25000", "--as", "alice")
    assert cli("decide", "R-2", "approve", "--as", "erin").returncode == 0
    assert cli("decide", "R-2", "approve", "--as", "bob", "--edit", "vendor=Initech").returncode == 0
    cli("run", "edit-recheck", "amount=25000", "--as", "alice")
    assert cli("decide", "R-3", "approve", "--as", "erin").returncode == 0
    assert cli("decide", "R-3", "approve", "--as", "bob", "--edit", "amount=15000").returncode == 0
    assert [e["inputs"]["amount"] for e in cli.entries()] == [49000.0, 25000.0, 15000.0]


# -- a conflict's choice ---------------------------------------------------------------------------
def test_a_choice_follows_the_signal_its_card_showed_not_one_sent_after(cli_tests: InProcess) -> None:
    """The analyst warns; the CFO is asked to choose. Before she clicks "Follow analyst
    (warn)", the analyst sends ok. Her choice used to follow the new ok signal: the run
    continued and paid, where the card had said a warning puts it before an approver."""
    cli = cli_tests
    cli("run", "late-signal", "--as", "alice")
    assert cli("signal", "R-1", "analyst", "--verdict", "warn", "--summary", "odd payee",
               "--as", "frank").returncode == 0
    assert "waiting at gate 'verdict' (conflict)" in cli("status", "R-1").stdout
    assert cli("signal", "R-1", "analyst", "--verdict", "ok", "--summary", "all fine",
               "--as", "frank").returncode == 0
    chose = cli("decide", "R-1", "follow_analyst", "--as", "erin", "--reason", "Look at the payee")
    assert chose.returncode == 0, chose.stderr
    assert "follows analyst (warn)" in chose.stdout and "gate 'approve' must approve" in chose.stdout
    assert "waiting at gate 'approve' (approval)" in cli("status", "R-1").stdout
    assert cli.entries() == []
    (decided,) = [d for d in entries(cli, "gate_decided") if d["gate"] == "verdict"]
    assert decided["winning_signal"]["verdict"] == "warn" and decided["effect"] == "gate"
    assert decided["signal_since"]["verdict"] == "ok"


def test_a_request_for_changes_does_not_lift_the_gate_a_choice_required(cli_tests: InProcess) -> None:
    """Following research's warning requires the approval whatever its `when` (amount 100).
    The approver asks for changes, which sends the run back to a step after the conflict;
    on its way back the gate used to ask its `when` only, skip itself and pay."""
    cli = cli_tests
    cli("run", "sent-back", "--as", "alice")
    assert cli("decide", "R-1", "follow_research", "--as", "frank",
               "--reason", "test vendor").returncode == 0
    assert cli("decide", "R-1", "request_changes", "--as", "bob",
               "--reason", "Which vendor is this really?").returncode == 0
    status = cli("status", "R-1").stdout
    assert "waiting at gate 'approve' (approval)" in status and cli.entries() == []
    assert cli("decide", "R-1", "approve", "--as", "carol").returncode == 0
    assert len(cli.entries()) == 1
    opened = [d for d in entries(cli, "gate_opened") if d["gate"] == "approve"]
    assert [o["required_by"]["conflict"] for o in opened] == ["signals", "signals"]


# -- four-eyes -----------------------------------------------------------------------------------
def test_the_requester_does_not_choose_the_signal_that_decides_their_own_approval(cli: InProcess) -> None:
    """Frank, the risk lead, asks to pay TEST-CO 500. Research warns, so the flow puts the
    payment before a finance approver who is not Frank, unless the signal followed is ok.
    He used to choose that himself (follow compliance, ok) and pay with nobody else looking."""
    cli("run", "vendor-payment", "vendor=TEST-CO", "amount=500", "--as", "frank")
    status = cli("status", "R-1").stdout
    assert "waiting at gate 'signals' (conflict)" in status
    assert "can decide: Erin Park;" in status  # nobody else is a risk lead: the admins
    mine = cli("decide", "R-1", "follow_compliance", "--as", "frank", "--reason", "fine")
    assert mine.returncode == 2 and "four-eyes" in mine.stderr
    assert cli("claim", "R-1", "--as", "frank").returncode == 2
    assert cli.entries() == []
    assert cli("decide", "R-1", "follow_research", "--as", "erin", "--reason", "test vendor").returncode == 0
    assert "waiting at gate 'approve'" in cli("status", "R-1").stdout


FOUR_EYES_LATER = """
name: {name}
agents:
  a: {{kind: rules, rules: [{{when: "true", verdict: ok}}]}}
  b: {{kind: rules, rules: [{{when: "true", verdict: warn}}]}}
blocks:
  review:
    - gate: {{id: review, approvers: "role:finance-approver", forbid_requester: true}}
steps:
  - parallel: [a, b]
  - conflict: {{id: pick, among: [a, b], deciders: "role:risk-lead", then: {then}}}
  - gate: {{id: final, when: "{when}", approvers: "role:finance-approver", forbid_requester: true}}
  - action: {{id: pay, call: "testagents:record"}}
"""


@pytest.mark.parametrize(("then", "when", "four_eyes"), [
    ("{warn: 'path:review', ok: continue}", "false", True),  # a path to a four-eyes gate
    ("{warn: continue, ok: continue}", "conflicts.pick.verdict != 'ok'", True),  # read by `when`
    ("{warn: continue, ok: continue}",
     "has(gates.pick) && gates.pick.option != 'follow_a'", True),  # the option
    ("{warn: continue, ok: continue, block: stop, none: stop}", "true", False),  # the gate opens anyway
])
def test_the_requester_chooses_no_signal_that_a_four_eyes_gate_depends_on(
        tmp_path: Path, database_url: str, then: str, when: str, four_eyes: bool) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(TEST_FLOWS, flows)
    (flows / "later.yaml").write_text(FOUR_EYES_LATER.format(name="later", then=then, when=when))
    cli = InProcess(tmp_path, flows, database_url)
    cli("run", "later", "--as", "frank")
    can_decide = "can decide: Erin Park;" if four_eyes else "can decide: Frank Li;"
    assert can_decide in cli("status", "R-1").stdout
    assert (cli("decide", "R-1", "follow_a", "--as", "frank", "--reason", "ok").returncode
            == (2 if four_eyes else 0))


def test_an_org_file_cannot_give_one_slack_user_two_principals(tmp_path: Path, database_url: str) -> None:
    """Four-eyes compares principals: with one Slack id under two keys, a person who asked
    in Slack (one key) could approve from the CLI or a webhook's name (the other)."""
    org = tmp_path / "org.yaml"
    org.write_text((EXAMPLE_FLOWS / "org.yaml").read_text().replace(
        "users:\n", "users:\n  alice-ops: {name: Alice (ops), slack_id: U0ALICE01}\n", 1))
    cli = InProcess(tmp_path, EXAMPLE_FLOWS, database_url)
    result = cli("flows", "list", BATON_ORG=str(org))
    assert result.returncode == 2
    assert "U0ALICE01" in result.stderr and "alice" in result.stderr and "alice-ops" in result.stderr


def test_an_escalation_chain_longer_than_a_calendar_is_refused(cli: InProcess, tmp_path: Path) -> None:
    """A flow author's max_postpone of 3,000,000 days made every claim and snooze of its
    gates an internal error, and such waits failed every run at its gate."""
    flow = tmp_path / "long.yaml"
    for chain in ("levels: [{notify: 'role:finance-approver', wait: 30m}]\n    max_postpone: 3000000d",
                  "levels: [{notify: 'role:finance-approver', wait: 999999999d},\n"
                  "             {notify: 'role:finance-lead', wait: 999999999d}]"):
        flow.write_text("name: long\nsteps:\n  - gate: {id: approve, approvers: 'role:finance-approver',"
                        f" escalation: chain}}\nescalations:\n  chain:\n    {chain}\n")
        result = cli("flows", "validate", str(flow))
        assert result.returncode == 2, result.stdout
        assert "escalations.chain:" in result.stderr and "at most 3,650" in result.stderr


TWO_EDITORS = """
name: two-editors
inputs:
  amount: {type: number, required: true}
  vendor: {type: string, default: ACME}
steps:
  - gate: {id: vendor-review, when: "inputs.vendor != 'ACME'",
           approvers: ["role:finance-approver", "role:cfo"]}
  - gate: {id: approve, approvers: ["role:finance-approver", "role:cfo"], quorum: 2,
           editable: [amount, vendor]}
  - action: {id: pay, call: "testagents:record"}
"""


def test_an_editor_who_approves_again_after_another_edit_is_still_an_editor(
        tmp_path: Path, database_url: str) -> None:
    """Bob proposes vendor=Initech; Carol edits the amount, which dismisses Bob's approval;
    Bob approves again, without edits. The vendor review his edit needs used to count him
    as no editor at all, and he reviewed his own vendor."""
    flows = tmp_path / "flows"
    shutil.copytree(TEST_FLOWS, flows)
    (flows / "two-editors.yaml").write_text(TWO_EDITORS)
    cli = InProcess(tmp_path, flows, database_url)
    cli("run", "two-editors", "amount=100", "--as", "alice")
    assert cli("decide", "R-1", "approve", "--as", "bob", "--edit", "vendor=Initech").returncode == 0
    assert cli("decide", "R-1", "approve", "--as", "carol", "--edit", "amount=90").returncode == 0
    assert cli("decide", "R-1", "approve", "--as", "bob").returncode == 0
    status = cli("status", "R-1").stdout
    assert "waiting at gate 'vendor-review' (approval)" in status and "can decide: Erin Park;" in status
    mine = cli("decide", "R-1", "approve", "--as", "bob")
    assert mine.returncode == 2 and "edit" in mine.stderr
    assert cli("decide", "R-1", "approve", "--as", "erin").returncode == 0
    assert [(e["inputs"]["vendor"], e["inputs"]["amount"]) for e in cli.entries()] == [("Initech", 90.0)]
