"""The vendor-payment example, end to end through the engine on a real SQLite file."""

from collections.abc import Callable

from sqlmodel import select

from orchestrator.engine import Engine
from storage.models import Decision, Gate, Run, TraceEntry


def trace_of(engine: Engine, ref: str) -> list[TraceEntry]:
    with engine.db.read() as s:
        return list(s.exec(select(TraceEntry).where(TraceEntry.chain == ref)
                           .order_by(TraceEntry.seq)))


def kinds(entries: list[TraceEntry]) -> list[str]:
    return [e.kind for e in entries]


def test_large_payment_waits_at_the_gate_and_an_approval_completes_it(
        engine: Engine, ledger: Callable) -> None:
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    assert engine.get_run(run.ref).status == "waiting"
    (gate,) = engine.open_gates(run.id)
    assert gate.key == "approve" and set(gate.approvers) == {"bob", "carol"}

    report = engine.decide(run.ref, "bob", "approve", reason="Invoice matches the PO")
    assert report.status == "recorded" and report.outcome == "approve"
    assert engine.get_run(run.ref).status == "succeeded"
    assert [e["idempotency_key"] for e in ledger()] == [f"{run.ref}:pay"]

    entries = trace_of(engine, run.ref)
    signals = {e.data["agent"]: e.data for e in entries if e.kind == "signal"}
    assert set(signals) == {"research", "risk", "compliance"}
    assert all(s["verdict"] == "ok" for s in signals.values())
    (boundary,) = [e.data for e in entries if e.kind == "boundary"]
    assert boundary["passed"] and boundary["values"] == {"inputs.amount": 20000.0}
    (decision,) = [e for e in entries if e.kind == "decision"]
    assert decision.actor == "bob" and decision.data["option"] == "approve"
    assert decision.data["reason"] == "Invoice matches the PO"
    assert decision.created_at == engine.clock.now()
    assert kinds(entries)[-3:] == ["action_started", "action_done", "run_finished"]


def test_small_payment_needs_no_gate_and_the_trace_says_why(engine: Engine, ledger: Callable) -> None:
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "5000"}, "alice")
    assert engine.get_run(run.ref).status == "succeeded"
    (skipped,) = [e.data for e in trace_of(engine, run.ref) if e.kind == "gate_skipped"]
    assert skipped["gate"] == "approve"
    assert skipped["values"] == {"inputs.amount": 5000.0, "signals.risk.verdict": "ok"}
    assert "no approval needed" in skipped["why"]
    assert len(ledger()) == 1


def test_payment_over_the_limit_is_stopped_by_the_boundary(engine: Engine, ledger: Callable) -> None:
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "60000"}, "alice")
    final = engine.get_run(run.ref)
    assert (final.status, final.outcome) == ("stopped", "boundary")
    assert "50,000" in (final.reason or "")
    entries = trace_of(engine, run.ref)
    (boundary,) = [e.data for e in entries if e.kind == "boundary"]
    assert boundary["passed"] is False and boundary["values"] == {"inputs.amount": 60000.0}
    assert "signal" not in kinds(entries)  # stopped before any agent spent anything
    assert ledger() == []


def test_someone_the_gate_does_not_name_is_refused_traced_and_nothing_changes(
        engine: Engine) -> None:
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    before = engine.get_run(run.ref)
    report = engine.decide(run.ref, "dave", "approve", reason="I'm the lead")
    assert report.status == "refused"
    assert "not an approver" in report.message and "Bob Ortiz, Carol Diaz" in report.message
    after = engine.get_run(run.ref)
    assert (after.status, after.cursor) == (before.status, before.cursor)
    with engine.db.read() as s:
        assert s.exec(select(Decision)).all() == []
        assert s.exec(select(Gate)).one().status == "open"
    refused = [e for e in trace_of(engine, run.ref) if e.kind == "decision_refused"]
    assert refused[0].actor == "dave" and "not an approver" in refused[0].data["why"]


def test_requester_cannot_approve_their_own_payment(engine: Engine) -> None:
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "bob")
    report = engine.decide(run.ref, "bob", "approve")
    assert report.status == "refused" and "four-eyes" in report.message
    assert engine.decide(run.ref, "carol", "approve", reason="Checked").outcome == "approve"
    assert engine.get_run(run.ref).status == "succeeded"


def test_reject_needs_a_reason_and_ends_the_run(engine: Engine, ledger: Callable) -> None:
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    refused = engine.decide(run.ref, "carol", "reject")
    assert refused.status == "refused" and "needs a reason" in refused.message
    assert engine.decide(run.ref, "carol", "reject", reason="Duplicate invoice").outcome == "reject"
    final = engine.get_run(run.ref)
    assert final.status == "rejected" and "rejected by Carol Diaz" in (final.reason or "")
    assert ledger() == []


def test_double_click_counts_once(engine: Engine) -> None:
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    first = engine.decide(run.ref, "bob", "request_changes", reason="Attach the PO")
    assert first.outcome == "request_changes"
    # back at the conflict step, then the gate opens again (visit 2)
    (gate,) = engine.open_gates(run.id)
    assert gate.visit == 2
    assert engine.get_run(run.ref).context["comments"][0]["text"] == "Attach the PO"
    assert engine.decide(run.ref, "carol", "approve", reason="PO attached").status == "recorded"
    again = engine.decide(run.ref, "carol", "approve", reason="PO attached")
    assert again.status == "refused" and "already finished" in again.message


def test_edit_and_approve_pays_the_approved_amount(engine: Engine, ledger: Callable) -> None:
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    report = engine.decide(run.ref, "bob", "approve", edits={"amount": "9000"},
                           reason="Only the first milestone is due")
    assert report.outcome == "approve"
    assert [e["amount"] for e in ledger()] == [9000.0]
    final = engine.get_run(run.ref)
    assert final.inputs["amount"] == 9000.0 and final.requested_inputs["amount"] == 20000.0
    entries = trace_of(engine, run.ref)
    (decision,) = [e for e in entries if e.kind == "decision"]
    assert decision.actor == "bob"
    assert decision.data["edits"] == {"amount": {"from": 20000.0, "to": 9000.0}}
    (closed,) = [e.data for e in entries if e.kind == "gate_decided"]
    assert closed["approved_inputs"] == {"amount": {"requested": 20000.0, "approved": 9000.0}}


def test_edits_are_checked(engine: Engine) -> None:
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    bad = engine.decide(run.ref, "bob", "approve", edits={"vendor": "Other"}, reason="r")
    assert bad.status == "refused" and "'vendor' cannot be edited" in bad.message
    bad = engine.decide(run.ref, "bob", "approve", edits={"amount": "lots"}, reason="r")
    assert bad.status == "refused" and "expected a number" in bad.message
    assert engine.get_run(run.ref).status == "waiting"


def test_bad_inputs_are_refused_and_nothing_is_written(engine: Engine) -> None:
    import pytest

    from orchestrator.errors import InputError, NotFound

    with pytest.raises(InputError) as caught:
        engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20,000", "colour": "red"},
                         "alice")
    message = str(caught.value)
    assert "unknown input 'colour'" in message and "amount: expected a number" in message
    assert "usage" not in message  # each surface writes the usage its own way (baton …, /baton …)
    assert caught.value.usage == "run vendor-payment vendor=TEXT amount=NUMBER [note=TEXT]"
    with pytest.raises(NotFound, match=r"unknown flow 'vendor-paymnet'\. Did you mean 'vendor-payment'"):
        engine.start_run("vendor-paymnet", {}, "alice")
    with engine.db.read() as s:
        assert s.exec(select(Run)).all() == []
