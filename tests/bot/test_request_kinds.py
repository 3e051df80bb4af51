"""A Slack request's kind is decided once: bolt routes it to one listener by its action or
callback id, the listener stores it in the inbox under one kind (`action:gate.claim`,
`view:gate.reason`, ...), and that kind alone picks what finishes it, right after the
acknowledgement or in the sweep after a crash (`SlackBot.finishers`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from sqlmodel import col, select

from bot.commands import HELP
from orchestrator.clock import FakeClock
from sandbox import payloads
from storage import rows
from storage.models import Decision, Gate, SlackInbox
from tests.bot.conftest import ALICE, BOB, CAROL, DAVE, FRANK, PAYMENTS, Baton

# Kinds no listener of this version stores: rows an older Baton stored and died with.
OLDER = {"action", "view"}

# A gate with every control: decide buttons, a reason for reject, Edit & approve, and (on the
# DM copies an escalation sends) claim and snooze.
EVERY_CONTROL = """
name: every-control
title: Every control on a gate
inputs:
  amount: {type: number, required: true}
steps:
  - gate:
      id: approve
      title: "Approve the amount?"
      approvers: "role:finance-approver"
      options: [approve, reject]
      reason_required: [reject]
      editable: [amount]
      escalation: chain
escalations:
  chain:
    levels:
      - {notify: "role:finance-approver", wait: 30m}
      - {notify: "role:finance-lead", wait: 1h}
    finally: reject
    claim_timeout: 1h
    snooze: [15m, 1h]
"""


def _stored(baton: Baton) -> list[tuple[str, str]]:
    with baton.engine.db.read() as s:
        return [(r.kind, r.status) for r in s.exec(select(SlackInbox).order_by(col(SlackInbox.id)))]


def _start(baton: Baton, ref: str, command: str = "run vendor-payment vendor=ACME amount=20000"
           ) -> int:
    """A run waiting at its gate; the gate's id."""
    baton.driver.slash_command(command, user=ALICE, channel=PAYMENTS)
    baton.settle()
    baton.gate_message(ref)
    with baton.engine.db.read() as s:
        gate = s.exec(select(Gate).where(Gate.status == "open").order_by(col(Gate.id).desc())).first()
    assert gate is not None and gate.id is not None
    return gate.id


def test_every_kind_a_listener_stores_is_finished_by_its_own_finisher(
        make_baton: Callable[..., Baton], tmp_path: Path) -> None:
    (tmp_path / "every-control.yaml").write_text(EVERY_CONTROL)
    clock = FakeClock()
    baton = make_baton(tmp_path, clock=clock)
    gate_id = _start(baton, "R-1", "run every-control amount=20000")
    gate = baton.gate_message("R-1")
    clock.advance(timedelta(minutes=30))
    baton.engine.fire_due_timers()  # level 2: Dave gets the gate by DM, with claim and snooze
    baton.settle()
    (dm,) = baton.dms(DAVE)
    baton.driver.click(user=DAVE, action_id="gate.claim", channel=dm.channel, ts=dm.ts)
    baton.settle()
    baton.driver.choose(f"{gate_id}:900", user=DAVE, action_id="gate.snooze", channel=dm.channel,
                        ts=dm.ts)
    baton.settle()
    # Frank may not decide: his clicks open no modal, they are stored and the policy says no
    baton.driver.click(user=FRANK, action_id="gate.decide.approve", channel=PAYMENTS, ts=gate.ts)
    baton.driver.click(user=FRANK, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
    baton.settle()
    baton.driver.click(user=CAROL, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
    baton.submit(CAROL, {"edit:amount": "9000"})
    baton.settle()

    _start(baton, "R-2", "run every-control amount=20000")
    second = baton.gate_message("R-2")
    baton.driver.click(user=BOB, action_id="gate.decide.reject", channel=PAYMENTS, ts=second.ts)
    baton.submit(BOB, {"reason": "Duplicate invoice"})
    baton.driver.direct_message("status R-2", user=ALICE)
    baton.settle()

    stored = _stored(baton)
    assert {kind for kind, _ in stored} == set(baton.service.bot.finishers) - OLDER
    assert {status for _, status in stored} == {"done"}
    # and each did what it asked
    with baton.engine.db.read() as s:
        first = s.get(Gate, gate_id)
        decisions = sorted((d.decider, d.option, d.edits) for d in s.exec(select(Decision)))
    assert first is not None and first.claimed_by == "dave"
    assert decisions == [("bob", "reject", {}), ("carol", "approve", {"amount": 9000.0})]
    assert baton.engine.get_run("R-1").status == "succeeded"
    assert baton.engine.get_run("R-2").status == "rejected"
    refused = [e.text for e in baton.ephemerals(FRANK)]
    assert len(refused) == 2 and all("R-1" in text for text in refused), refused
    told = [e.text for e in baton.ephemerals(DAVE)]
    assert len(told) == 2 and "R-1 is yours until" in told[0] and "R-1 snoozed until" in told[1], told
    assert any("R-2" in m.text for m in baton.dms(ALICE)[1:])


def _older_row(baton: Baton, key: str, kind: str, payload: dict[str, Any]) -> None:
    """A request as an older Baton stored it, acknowledged by a process that then died
    (nobody holds it)."""
    with baton.engine.db.write() as s:
        rows.add(s, SlackInbox, {"key": key, "kind": kind, "payload": payload,
                                 "received_at": baton.engine.clock.now()})


def _click_payload(baton: Baton, user: str, action_id: str, ts: str) -> dict[str, Any]:
    """The block_actions payload Slack would send for this click (not sent)."""
    click = baton.driver.prepare_click(user=user, action_id=action_id, channel=PAYMENTS, ts=ts)
    (sent,) = parse_qs(click.body.decode())["payload"]
    return json.loads(sent)


def test_requests_an_older_baton_stored_are_finished_by_the_sweep(baton: Baton) -> None:
    gate_id = _start(baton, "R-1")
    gate = baton.gate_message("R-1")
    _older_row(baton, "action:older-click", "action",
               _click_payload(baton, DAVE, "gate.decide.approve", gate.ts))
    # the reason modal, filled in and submitted, stored as `view`
    baton.driver.click(user=CAROL, action_id="gate.decide.reject", channel=PAYMENTS, ts=gate.ts)
    ws = baton.slack.workspace
    modal = baton.modal(CAROL)
    view = ws.set_view_state(modal.id, payloads.input_state(modal.blocks, {"reason": "Wrong vendor"}))
    _older_row(baton, "view:older-reason", "view", payloads.view_submission(
        ws, user=ws.user(CAROL), view=view, trigger_id=ws.issue_trigger(CAROL)))

    baton.service.timers.sweep()  # what `baton serve` runs every BATON_TIMER_SWEEP
    baton.settle()
    assert _stored(baton) == [("command", "done"), ("action", "done"), ("view", "done")]
    with baton.engine.db.read() as s:
        decisions = [(d.decider, d.option, d.reason) for d in s.exec(select(Decision))]
    assert decisions == [("carol", "reject", "Wrong vendor")]
    assert baton.engine.get_run("R-1").status == "rejected"
    (refused,) = baton.ephemerals(DAVE)  # the older click went to the gate policy, as then
    assert "not an approver of R-1" in refused.text
    assert gate_id


def test_a_kind_this_baton_does_not_know_is_set_aside_with_the_reason(baton: Baton) -> None:
    """A row a newer Baton stored (a kind added later): marked failed, saying which kind,
    and nothing else is done; the sweep goes on to the other requests."""
    _start(baton, "R-1")
    gate = baton.gate_message("R-1")
    payload = _click_payload(baton, DAVE, "gate.decide.approve", gate.ts)
    _older_row(baton, "action:newer", "action:gate.teleport", payload)
    _older_row(baton, "action:older", "action", payload)

    baton.service.timers.sweep()
    baton.settle()
    with baton.engine.db.read() as s:
        newer = s.exec(select(SlackInbox).where(SlackInbox.key == "action:newer")).one()
        older = s.exec(select(SlackInbox).where(SlackInbox.key == "action:older")).one()
    assert (newer.status, newer.error) == (
        "failed", "no finisher for requests of kind 'action:gate.teleport'")
    assert older.status == "done"
    (told,) = baton.ephemerals(DAVE)  # once: for the older row, not for the unknown one
    assert "not an approver of R-1" in told.text


def test_every_baton_verb_has_its_handler_and_its_line_in_help(baton: Baton) -> None:
    """`/baton VERB` finds its handler in one table (Commands.verbs), and help lists the same
    verbs, each of them answered through the endpoint."""
    verbs = set(baton.service.bot.conversations.commands.verbs)
    assert verbs == {command.split()[0] for command, _ in HELP}
    shown = baton.driver.slash_command("help", user=ALICE, channel=PAYMENTS).body
    for verb in verbs:
        assert f"/baton {verb}" in shown, verb
    unknown = baton.driver.slash_command("cmd_run vendor-payment", user=ALICE, channel=PAYMENTS)
    assert "is not a Baton command" in unknown.body
