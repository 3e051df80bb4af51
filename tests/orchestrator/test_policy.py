"""Gate policy through the engine: who decides, quorum, conflicts, boundaries, halt."""

from collections.abc import Callable

import pytest
from sqlmodel import select

from orchestrator.engine import Engine
from orchestrator.errors import BatonError
from storage.models import Decision, TraceEntry


def traced(engine: Engine, chain: str, kind: str) -> list[TraceEntry]:
    with engine.db.read() as s:
        return list(s.exec(select(TraceEntry).where(TraceEntry.chain == chain, TraceEntry.kind == kind)
                           .order_by(TraceEntry.seq)))


# -- quorum and four-eyes -----------------------------------------------------------------------
def test_quorum_two_of_three_needs_two_distinct_people(test_engine: Engine, ledger: Callable) -> None:
    run = test_engine.start_run("two-approvals", {"amount": "500"}, "alice")
    first = test_engine.decide(run.ref, "bob", "approve")
    assert first.status == "recorded" and first.outcome is None
    assert "1 of 2 approvals" in first.message
    again = test_engine.decide(run.ref, "bob", "approve")  # a double click
    assert again.status == "duplicate" and "one decision per person" in again.message
    assert test_engine.get_run(run.ref).status == "waiting"
    done = test_engine.decide(run.ref, "dave", "approve")
    assert done.outcome == "approve" and "approved by Bob Ortiz, Dave Kim" in done.message
    assert test_engine.get_run(run.ref).status == "succeeded" and len(ledger()) == 1


def test_one_reject_ends_a_quorum_gate(test_engine: Engine, ledger: Callable) -> None:
    run = test_engine.start_run("two-approvals", {"amount": "500"}, "alice")
    test_engine.decide(run.ref, "bob", "approve")
    report = test_engine.decide(run.ref, "carol", "reject", reason="Vendor not onboarded")
    assert report.outcome == "reject"
    assert test_engine.get_run(run.ref).status == "rejected" and ledger() == []


def test_requester_is_refused_under_four_eyes(test_engine: Engine) -> None:
    run = test_engine.start_run("two-approvals", {"amount": "500"}, "bob")
    report = test_engine.decide(run.ref, "bob", "approve")
    assert report.status == "refused" and "four-eyes" in report.message
    (refusal,) = traced(test_engine, run.ref, "decision_refused")
    assert refusal.actor == "bob" and refusal.data["option"] == "approve"
    with test_engine.db.read() as s:
        assert s.exec(select(Decision)).all() == []


def test_an_edit_dismisses_approvals_given_to_the_old_values(test_engine: Engine,
                                                               ledger: Callable) -> None:
    run = test_engine.start_run("two-approvals", {"amount": "20000"}, "alice")
    test_engine.decide(run.ref, "bob", "approve")
    edit = test_engine.decide(run.ref, "carol", "approve", edits={"amount": "9000"})
    assert edit.outcome is None  # bob approved 20000, not 9000
    (dismissed,) = traced(test_engine, run.ref, "approvals_dismissed")
    assert dismissed.data["dismissed"] == ["bob"]
    assert test_engine.decide(run.ref, "bob", "approve").outcome == "approve"
    assert [e["inputs"]["amount"] for e in ledger()] == [9000.0]
    (closed,) = traced(test_engine, run.ref, "gate_decided")
    assert closed.data["approved_inputs"] == {"amount": {"requested": 20000.0, "approved": 9000.0}}


# -- conflicting signals ------------------------------------------------------------------------
def test_follow_priority_follows_compliance(test_engine: Engine) -> None:
    run = test_engine.start_run("conflicts", {"policy": "priority"}, "alice")
    (conflict,) = traced(test_engine, run.ref, "conflict")
    assert conflict.data["agreed"] is False and conflict.data["winner"] == "compliance"
    assert conflict.data["verdicts"] == {"research": "ok", "risk": "warn", "compliance": "block"}
    assert conflict.data["policy"] == "follow_priority"
    final = test_engine.get_run(run.ref)
    assert final.status == "stopped" and final.reason == "The signal the run follows blocks it"


def test_most_severe(test_engine: Engine) -> None:
    run = test_engine.start_run("conflicts", {"policy": "severe"}, "alice")
    assert traced(test_engine, run.ref, "conflict")[0].data["winner"] == "compliance"


def test_ask_records_the_chosen_signal_and_the_reason(test_engine: Engine) -> None:
    run = test_engine.start_run("conflicts", {"policy": "ask"}, "alice")
    (gate,) = test_engine.open_gates(run.id)
    assert gate.kind == "conflict" and gate.approvers == ["frank"]
    assert [o["id"] for o in gate.options] == ["follow_compliance", "follow_risk", "follow_research"]
    refused = test_engine.decide(run.ref, "frank", "follow_risk")
    assert refused.status == "refused" and "needs a reason" in refused.message
    report = test_engine.decide(run.ref, "frank", "follow_risk",
                                reason="The regulation cited does not apply to domestic vendors")
    assert report.outcome == "approve"
    (closed,) = traced(test_engine, run.ref, "gate_decided")
    assert closed.data["winner"] == "risk"
    assert closed.data["winning_signal"] == {"agent": "risk", "verdict": "warn", "severity": "medium"}
    (decision,) = traced(test_engine, run.ref, "decision")
    assert decision.actor == "frank" and "domestic" in decision.data["reason"]
    assert test_engine.get_run(run.ref).status == "succeeded"  # risk warns, does not block


def test_agreement_passes_with_no_human(test_engine: Engine) -> None:
    run = test_engine.start_run("conflicts", {"policy": "ask", "agree": "true"}, "alice")
    assert test_engine.get_run(run.ref).status == "succeeded"
    (conflict,) = traced(test_engine, run.ref, "conflict")
    assert conflict.data["agreed"] is True and conflict.data["winner"] == "research"


def test_escalate_policy_hands_the_choice_to_the_chain(test_engine: Engine) -> None:
    run = test_engine.start_run("conflicts", {"policy": "escalate"}, "alice")
    (gate,) = test_engine.open_gates(run.id)
    assert gate.approvers == ["frank"] and gate.chain["name"] == "risk-chain"
    assert "escalate" in [o["id"] for o in gate.options]
    report = test_engine.decide(run.ref, "frank", "escalate", reason="CFO call")
    assert report.status == "escalated"
    (gate,) = test_engine.open_gates(run.id)
    assert gate.esc_level == 1 and set(gate.approvers) == {"frank", "erin"}


# -- external signals and the settle window ------------------------------------------------------
def test_settle_window_lets_late_signals_join_one_conflict(test_engine: Engine, clock) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    run = test_engine.start_run("external-signals", {}, "alice")
    assert test_engine.get_run(run.ref).status == "waiting"
    (settling,) = traced(test_engine, run.ref, "conflict_settling")
    assert settling.data["waiting_for"] == ["analyst", "bureau"]
    with pytest.raises(BatonError, match="you may not submit analyst's signal"):
        test_engine.submit_signal(run.ref, "analyst", {"verdict": "warn"}, "bob")
    test_engine.submit_signal(run.ref, "analyst", {"verdict": "warn", "summary": "Odd pattern"},
                              "frank")
    assert test_engine.get_run(run.ref).status == "waiting"  # bureau still out
    test_engine.submit_signal(run.ref, "bureau", {"verdict": "ok", "summary": "Clean file"}, "erin")
    assert test_engine.get_run(run.ref).status == "succeeded"
    (conflict,) = traced(test_engine, run.ref, "conflict")
    assert conflict.data["winner"] == "bureau" and "abstained" not in conflict.data
    assert traced(test_engine, run.ref, "signal")[1].actor == "frank"
    clock.advance(timedelta(minutes=11))
    assert test_engine.fire_due_timers() == 0  # the window's timer is stale now


def test_settle_window_closes_with_the_signals_that_came(test_engine: Engine, clock) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    run = test_engine.start_run("external-signals", {}, "alice")
    test_engine.submit_signal(run.ref, "analyst", {"verdict": "warn"}, "frank")
    clock.advance(timedelta(minutes=10))
    assert test_engine.fire_due_timers() == 1
    (conflict,) = traced(test_engine, run.ref, "conflict")
    assert conflict.data["abstained"] == ["bureau"] and conflict.data["winner"] == "analyst"


# -- boundaries ---------------------------------------------------------------------------------
def test_legal_verification_is_a_gate_only_legal_can_pass(test_engine: Engine,
                                                          ledger: Callable) -> None:
    run = test_engine.start_run("guarded", {"amount": "100", "cross_border": "yes"}, "alice")
    (gate,) = test_engine.open_gates(run.id)
    assert (gate.kind, gate.key, gate.approvers) == ("boundary", "legal-verification", ["henry"])
    assert test_engine.decide(run.ref, "erin", "approve", reason="I'm the CFO").status == "refused"
    assert test_engine.decide(run.ref, "henry", "approve").status == "refused"  # reason required
    assert test_engine.decide(run.ref, "henry", "approve", reason="Counterparty verified").outcome
    assert test_engine.get_run(run.ref).status == "succeeded" and len(ledger()) == 1


def test_boundary_escalation_goes_to_the_chain(test_engine: Engine, ledger: Callable) -> None:
    run = test_engine.start_run("guarded", {"amount": "80000"}, "alice")
    (violation,) = [e for e in traced(test_engine, run.ref, "boundary") if not e.data["passed"]]
    assert violation.data["boundary"] == "amount-limit" and violation.data["on_violation"] == "escalate"
    (gate,) = test_engine.open_gates(run.id)
    assert gate.approvers == ["erin"] and gate.chain["name"] == "cfo-chain"
    test_engine.decide(run.ref, "erin", "reject")
    final = test_engine.get_run(run.ref)
    assert (final.status, final.outcome) == ("stopped", "boundary") and ledger() == []


# -- halt ---------------------------------------------------------------------------------------
def test_halt_blocks_new_runs_and_pending_actions_until_resume(test_engine: Engine,
                                                               ledger: Callable) -> None:
    run = test_engine.start_run("two-approvals", {"amount": "100"}, "alice")
    with pytest.raises(BatonError, match="only admins can halt"):
        test_engine.halt("bob", "panic")
    test_engine.halt("erin", "Bank incident, all payments frozen")
    with pytest.raises(BatonError, match=r"Baton is halted .*Erin Park: Bank incident"):
        test_engine.start_run("two-approvals", {"amount": "100"}, "alice")
    test_engine.decide(run.ref, "bob", "approve")
    test_engine.decide(run.ref, "dave", "approve")
    held = test_engine.get_run(run.ref)
    assert held.status == "held" and ledger() == []
    with pytest.raises(BatonError, match="only admins can resume"):
        test_engine.resume("dave")
    assert test_engine.resume("erin") == [run.ref]
    assert test_engine.get_run(run.ref).status == "succeeded" and len(ledger()) == 1
    system = traced(test_engine, "system", "halted") + traced(test_engine, "system", "resumed")
    assert [e.actor for e in system] == ["erin", "erin"]
    assert [e.actor for e in traced(test_engine, "system", "refused")] == ["bob", "dave"]


def test_stop_by_requester_or_admin_only(test_engine: Engine) -> None:
    run = test_engine.start_run("two-approvals", {"amount": "100"}, "alice")
    with pytest.raises(BatonError, match="only the requester"):
        test_engine.stop(run.ref, "bob")
    test_engine.stop(run.ref, "alice", "Wrong vendor")
    final = test_engine.get_run(run.ref)
    assert final.status == "stopped" and final.reason == "stopped by Alice Ng: Wrong vendor"
    assert test_engine.open_gates(run.id) == []
    assert [e.actor for e in traced(test_engine, run.ref, "refused")] == ["bob"]


# -- escalation from failures and the loop guard -------------------------------------------------
def test_failed_agent_escalates_and_a_person_can_retry_it(test_engine: Engine,
                                                          ledger: Callable) -> None:
    run = test_engine.start_run("agent-escalation", {}, "alice")
    (gate,) = test_engine.open_gates(run.id)
    assert (gate.kind, gate.key) == ("agent", "flaky-failed")
    assert set(gate.approvers) == {"grace", "frank"}
    test_engine.decide(run.ref, "grace", "retry")  # second failure (fail_times: 2)
    (gate,) = test_engine.open_gates(run.id)
    assert gate.visit == 2
    test_engine.decide(run.ref, "grace", "retry")
    # third visit answers; max_steps 3 is reached at the action: the loop guard escalates too
    (gate,) = test_engine.open_gates(run.id)
    assert (gate.kind, gate.key) == ("limit", "limits-max_steps")
    test_engine.decide(run.ref, "frank", "approve")
    assert test_engine.get_run(run.ref).status == "succeeded" and len(ledger()) == 1
