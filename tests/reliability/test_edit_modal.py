"""The edit modal shows the values it will submit (issue 21, item 8), through the real
endpoint: numbers written out in full, a value too long for an input or holding invisible
or direction-changing characters shown read-only and kept, and a modal submitted unchanged
changes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from storage.models import Decision, TraceEntry
from tests.bot.conftest import ALICE, CAROL, PAYMENTS, Baton
from tests.conftest import EXAMPLE_FLOWS
from tests.figures import Figures

pytestmark = pytest.mark.reliability(
    item="12", promise="The edit modal shows the values it will submit: submitted unchanged, "
                         "it changes nothing")

FLOW = """
name: edit-me
title: Edit me
inputs:
  amount: {type: number, required: true}
  count: {type: integer, required: true}
  small: {type: number}
  note: {type: string, max_length: 20000}
  label: {type: string}
  lines: {type: string}
steps:
  - gate:
      id: approve
      title: "Approve it?"
      approvers: "role:finance-approver"
      options: [approve, reject]
      editable: [amount, count, small, note, label, lines]
"""
# Inputs nobody has to give, and numbers no float holds exactly.
SPARSE = """
name: sparse
title: Sparse
inputs:
  amount: {type: number, required: true}
  big: {type: integer}
  count: {type: integer}
  note: {type: string}
  flag: {type: boolean}
  kind: {type: string, choices: [a, b]}
steps:
  - gate:
      id: approve
      title: "Approve it?"
      approvers: "role:finance-approver"
      options: [approve, reject]
      editable: [amount, big, count, note, flag, kind]
"""
LONG = "x" * 3100
SNEAKY = "pay \u202eevil\u202c to \u200bACME"


@pytest.fixture
def editing(make_baton, tmp_path: Path) -> Baton:  # type: ignore[no-untyped-def]
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(EXAMPLE_FLOWS / "org.yaml", flows / "org.yaml")
    (flows / "edit-me.yaml").write_text(FLOW)
    (flows / "sparse.yaml").write_text(SPARSE)
    return make_baton(flows, org=flows / "org.yaml")


def inputs_of(modal: Any) -> dict[str, dict[str, Any]]:
    return {b["block_id"].removeprefix("edit:"): b["element"] for b in modal.blocks
            if b.get("type") == "input" and b["block_id"].startswith("edit:")}


def start(baton: Baton, amount: str, count: str, small: str = "0.0000001") -> None:
    text = (f'run edit-me amount={amount} count={count} small={small} note="{LONG}" '
            f'label="{SNEAKY}" lines="one\\ntwo"')
    reply = baton.driver.slash_command(text.replace("\\n", "\n"), user=ALICE, channel=PAYMENTS)
    assert reply.status == 200 and "Error" not in reply.body, reply.body
    baton.settle()


@pytest.mark.parametrize(("amount", "count", "shown"), [
    ("12345.678", "12345678", ("12345.678", "12345678")),
    ("1e20", "7", ("100000000000000000000", "7")),
    ("0.1", "0", ("0.1", "0")),
])
def test_a_modal_submitted_unchanged_changes_nothing(editing: Baton, figures: Figures, amount: str,
                                                     count: str, shown: tuple[str, str]) -> None:
    baton = editing
    start(baton, amount, count)
    before = dict(baton.engine.get_run("R-1").inputs)
    gate = baton.gate_message()
    baton.driver.click(user=CAROL, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
    modal = baton.modal(CAROL)
    fields = inputs_of(modal)
    assert (fields["amount"]["initial_value"], fields["count"]["initial_value"]) == shown
    assert fields["small"]["initial_value"] == "0.0000001"
    assert fields["lines"]["multiline"] and fields["lines"]["initial_value"] == "one\ntwo"
    # the long and the sneaky values have no input: shown read-only, and why
    assert "note" not in fields and "label" not in fields
    said = json.dumps(modal.blocks, ensure_ascii=False)
    assert "Too long to edit here (3,100 characters)" in said
    assert "Contains invisible or direction-changing characters" in said
    assert "\u202e" not in said and "\u200b" not in said and "pay evil to ACME" in said
    reply = baton.submit(CAROL, {"reason": "Looks right as it is"})
    figures.add("requests_sent", 3)
    assert reply.status == 200 and "errors" not in reply.body
    baton.settle()
    run = baton.engine.get_run("R-1")
    assert run.status == "succeeded"
    assert run.inputs == before  # exactly: 12345.678 stays 12345.678, the long note whole
    assert run.inputs["note"] == LONG and run.inputs["label"] == SNEAKY
    with baton.engine.db.read() as s:
        (decision,) = s.exec(select(Decision)).all()
        edited = s.exec(select(TraceEntry).where(TraceEntry.kind == "gate_decided")).all()
    assert not decision.edits, decision.edits
    assert all(not e.data.get("edits") for e in edited)
    figures.add("decisions_recorded")


def test_an_edit_changes_only_what_was_edited(editing: Baton, figures: Figures) -> None:
    baton = editing
    start(baton, "12345.678", "12345678")
    gate = baton.gate_message()
    baton.driver.click(user=CAROL, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
    baton.submit(CAROL, {"edit:amount": "9000.5", "reason": "First milestone"})
    baton.settle()
    run = baton.engine.get_run("R-1")
    assert run.inputs["amount"] == 9000.5 and run.inputs["count"] == 12345678
    assert run.inputs["note"] == LONG and run.inputs["label"] == SNEAKY
    with baton.engine.db.read() as s:
        (decision,) = s.exec(select(Decision)).all()
    assert set(decision.edits or {}) == {"amount"}
    figures.add("requests_sent", 3)
    figures.add("decisions_recorded")


@pytest.mark.parametrize(("given", "shown"), [
    # only what is required: the rest has no value, and may be left empty
    ({"amount": "5"}, {"amount": "5"}),
    # beyond a float's 2**53, beyond 64 bits; a float's 17 digits; negative zero; a choice
    ({"amount": "0.30000000000000004", "big": str(2**53 + 1), "count": str(2**64 + 1),
      "flag": "false", "kind": "b"},
     {"amount": "0.30000000000000004", "big": "9007199254740993", "count": "18446744073709551617",
      "flag": "false", "kind": "b"}),
    ({"amount": "-0", "big": str(-2**63 - 1)}, {"amount": "-0", "big": str(-2**63 - 1)}),
    ({"amount": "5", "note": ""}, {"amount": "5"}),  # an empty text: nothing to show, kept empty
])
def test_every_kind_of_value_and_a_missing_one_round_trip_unchanged(
        editing: Baton, figures: Figures, given: dict[str, str], shown: dict[str, str]) -> None:
    """An input with no value made a required field: the approver had to make one up to
    approve at all, and so changed the run's inputs without meaning to."""
    baton = editing
    text = "run sparse " + " ".join(f"{k}={v}" for k, v in given.items())
    reply = baton.driver.slash_command(text, user=ALICE, channel=PAYMENTS)
    assert reply.status == 200 and "Error" not in reply.body, reply.body
    baton.settle()
    before = dict(baton.engine.get_run("R-1").inputs)
    gate = baton.gate_message()
    baton.driver.click(user=CAROL, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
    modal = baton.modal(CAROL)
    blocks = {b["block_id"].removeprefix("edit:"): b for b in modal.blocks
              if b.get("type") == "input" and b["block_id"].startswith("edit:")}
    assert set(blocks) == {"amount", "big", "count", "note", "flag", "kind"}
    assert {k: b["element"]["initial_value"] for k, b in blocks.items()
            if "initial_value" in b["element"]} == shown
    # what has a value must keep one; what has none may stay empty
    assert {k for k, b in blocks.items() if b.get("optional")} == set(blocks) - set(shown)
    reply = baton.submit(CAROL, {"reason": "As requested"})
    figures.add("requests_sent", 3)
    assert reply.status == 200 and "errors" not in reply.body, reply.body
    baton.settle()
    run = baton.engine.get_run("R-1")
    assert run.status == "succeeded"
    assert run.inputs == before and set(run.inputs) == set(given)
    assert [type(v) for v in run.inputs.values()] == [type(v) for v in before.values()]
    with baton.engine.db.read() as s:
        (decision,) = s.exec(select(Decision)).all()
    assert not decision.edits, decision.edits
    figures.add("decisions_recorded")


def test_an_integer_too_long_to_read_is_refused_in_the_modal(editing: Baton, figures: Figures) -> None:
    baton = editing
    baton.driver.slash_command("run sparse amount=5", user=ALICE, channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    baton.driver.click(user=CAROL, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
    reply = baton.submit(CAROL, {"edit:count": "9" * 5000})
    figures.add("requests_sent", 3)
    figures.add("refusals")
    errors = reply.json()["errors"]
    assert errors == {"edit:count": "count: expected a whole number such as 42, got one of 5,000 "
                                    "digits"}, errors
    baton.settle()
    assert baton.engine.get_run("R-1").inputs == {"amount": 5.0}


def test_a_modal_keeping_every_value_of_the_largest_flow_is_one_slack_accepts(
        make_baton, tmp_path: Path, figures: Figures) -> None:  # type: ignore[no-untyped-def]
    """A flow may have 50 inputs, all editable; a requester who gives each a value the modal
    can only keep (here an invisible character in each) must not make a modal of more
    blocks than Slack's 100: Slack would refuse to open it, and the Edit button would do
    nothing."""
    names = [f"i{n:02}" for n in range(50)]
    flow = ("name: wide\ntitle: Wide\ninputs:\n"
            + "".join(f"  {n}: {{type: string}}\n" for n in names)
            + "steps:\n  - gate:\n      id: approve\n      title: \"Approve it?\"\n"
              "      approvers: \"role:finance-approver\"\n      options: [approve, reject]\n"
              f"      editable: [{', '.join(names)}]\n")
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(EXAMPLE_FLOWS / "org.yaml", flows / "org.yaml")
    (flows / "wide.yaml").write_text(flow)
    baton: Baton = make_baton(flows, org=flows / "org.yaml")
    given = {n: f"{n}\u200bx" for n in names}
    text = "run wide " + " ".join(f"{n}={v}" for n, v in given.items())
    reply = baton.driver.slash_command(text, user=ALICE, channel=PAYMENTS)
    assert reply.status == 200 and "Error" not in reply.body, reply.body
    baton.settle()
    gate = baton.gate_message()
    baton.driver.click(user=CAROL, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
    figures.add("requests_sent", 2)
    baton.settle()
    opened = [c for c in baton.slack.calls if c.method == "views.open"]
    assert opened and opened[-1].ok, opened[-1].response if opened else "no views.open"
    modal = baton.modal(CAROL)
    said = json.dumps(modal.blocks, ensure_ascii=False)
    assert all(f"{n}x" in said for n in names)  # every value shown (invisible character dropped)
    reply = baton.submit(CAROL, {})
    assert reply.status == 200 and "errors" not in reply.body
    baton.settle()
    run = baton.engine.get_run("R-1")
    assert run.status == "succeeded" and run.inputs == given


def test_a_form_slack_does_not_open_is_said_and_decides_nothing(editing: Baton,
                                                                figures: Figures) -> None:
    """Slack refuses views.open when the click's trigger expired (a busy moment past its
    three seconds): the person is told to click again, and nothing is decided."""
    baton = editing
    start(baton, "10", "1")
    gate = baton.gate_message()
    baton.slack.faults.next("views.open", error="expired_trigger_id")
    reply = baton.driver.click(user=CAROL, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
    figures.add("requests_sent")
    figures.add("faults_injected")
    assert reply.status == 200
    baton.settle()
    told = [json.dumps(e.blocks) for e in baton.ephemerals(CAROL)]
    assert any("did not open the form (expired_trigger_id)" in t and "again" in t for t in told), told
    assert baton.engine.get_run("R-1").status == "waiting"


def test_every_input_is_on_the_gate_card_and_the_run_card(make_baton, tmp_path: Path,
                                                          figures: Figures) -> None:  # type: ignore[no-untyped-def]
    """A section holds 10 fields: the 11th input on (an account number, say) was silently
    left off the cards an approver decides from."""
    names = [f"i{n:02}" for n in range(23)]
    flow = ("name: many\ntitle: Many\ninputs:\n"
            + "".join(f"  {n}: {{type: string}}\n" for n in names)
            + "steps:\n  - gate:\n      id: approve\n      title: \"Approve it?\"\n"
              "      approvers: \"role:finance-approver\"\n      options: [approve, reject]\n")
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(EXAMPLE_FLOWS / "org.yaml", flows / "org.yaml")
    (flows / "many.yaml").write_text(flow)
    baton: Baton = make_baton(flows, org=flows / "org.yaml")
    text = "run many " + " ".join(f"{n}=value-of-{n}" for n in names)
    reply = baton.driver.slash_command(text, user=ALICE, channel=PAYMENTS)
    assert reply.status == 200 and "Error" not in reply.body, reply.body
    figures.add("requests_sent")
    baton.settle()
    for message in (baton.gate_message(), baton.run_card()):
        shown = json.dumps(message.blocks)
        assert [n for n in names if f"{n}: value-of-{n}" not in shown] == []
    trace = baton.driver.slash_command("trace R-1", user=ALICE, channel=PAYMENTS)
    assert [n for n in names if f"{n}: value-of-{n}" not in trace.body] == []


def test_a_conflict_among_many_agents_shows_every_signal_and_every_choice(
        make_baton, tmp_path: Path, figures: Figures) -> None:  # type: ignore[no-untyped-def]
    """A conflict may compare up to 50 agents. A section holds 10 fields and an actions block
    25 buttons: the eleventh signal on was left off the card, and the 26th choice on could
    not be made."""
    names = [f"a{n:02}" for n in range(30)]
    verdicts = ["ok", "warn", "block"]
    agents = "".join(
        f"  {n}: {{kind: rules, rules: [{{when: 'true', verdict: {verdicts[i % 3]}, "
        f"summary: 'said by {n}'}}]}}\n" for i, n in enumerate(names))
    flow = ("name: crowd\ntitle: Crowd\nagents:\n" + agents
            + f"steps:\n  - parallel: [{', '.join(names)}]\n"
              f"  - conflict: {{id: verdict, among: [{', '.join(names)}], on_disagreement: ask,"
              " deciders: \"role:finance-approver\", then: {block: stop, warn: continue}}\n"
              "  - gate: {id: approve, approvers: \"role:finance-approver\"}\n")
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(EXAMPLE_FLOWS / "org.yaml", flows / "org.yaml")
    (flows / "crowd.yaml").write_text(flow)
    baton: Baton = make_baton(flows, org=flows / "org.yaml")
    reply = baton.driver.slash_command("run crowd", user=ALICE, channel=PAYMENTS)
    assert reply.status == 200 and "Error" not in reply.body, reply.body
    figures.add("requests_sent")
    baton.settle()
    card = baton.gate_message()
    shown = json.dumps(card.blocks)
    assert [n for n in names if f"said by {n}" not in shown] == []
    buttons = [e["action_id"] for b in card.blocks if b["type"] == "actions" for e in b["elements"]]
    assert [n for n in names if f"gate.decide.follow_{n}" not in buttons] == []
    # the last choice works like the first
    last = names[-1]
    baton.driver.click(user=CAROL, action_id=f"gate.decide.follow_{last}", channel=PAYMENTS,
                       ts=card.ts)
    baton.submit(CAROL, {"reason": "the last one is right"})
    baton.settle()
    with baton.engine.db.read() as s:
        (decision,) = s.exec(select(Decision)).all()
    assert decision.option == f"follow_{last}"
