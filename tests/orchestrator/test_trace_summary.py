"""The trace summary states every fact an auditor asks for; the export matches its schema."""

import json
from datetime import timedelta

import jsonschema
from sqlmodel import select

from orchestrator.clock import FakeClock
from orchestrator.engine import Engine
from orchestrator.readers import report
from orchestrator.readers.export import export_run
from orchestrator.readers.summary import summarize
from storage.models import TraceEntry
from storage.trace import chain_entries
from tests.conftest import ROOT


def text_of(engine: Engine, ref: str) -> str:
    run = engine.get_run(ref)
    with engine.db.read() as s:
        entries = chain_entries(s, run.ref)
    return report.plain(summarize(run, entries, engine.org), engine.org)


def test_summary_of_an_edited_approval_states_every_fact(engine: Engine, clock: FakeClock) -> None:
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    clock.advance(timedelta(minutes=5))
    engine.decide(run.ref, "dave", "approve", reason="I'm the lead")
    clock.advance(timedelta(minutes=7))
    engine.decide(run.ref, "bob", "approve", reason="Only milestone 1 is due", edits={"amount": "9000"})
    text = text_of(engine, run.ref)
    # header: flow, run id, requester, state, duration
    assert "R-1 · vendor-payment · succeeded" in text
    assert "requested by Alice Ng at 2026-01-05 09:00:00 UTC" in text
    assert "duration 12m" in text
    assert "Changed by approvers: amount 20,000 -> 9,000" in text
    # signals with verdict, severity and a one-line rationale
    assert "risk: ok (100%) - Amount within the usual range" in text
    assert ("compliance: ok (95%) - No sanctions match. "
            "Why: 'ACME' does not match any sanctions-list entry") in text
    # conflicts: policy and outcome
    assert "signals: signals agree (research ok, risk ok, compliance ok); policy ask not needed" in text
    # boundaries with results
    assert "amount-limit: passed: inputs.amount <= 50000.0 (inputs.amount=20,000)" in text
    # gates: every decision (who, when, option, reason, edits) and every refused attempt
    assert "2026-01-05 09:05:00 REFUSED Dave Kim (approve): you are not an approver" in text
    assert ('2026-01-05 09:12:00 Bob Ortiz chose approve: "Only milestone 1 is due" '
            "(edited amount 20,000 -> 9,000)") in text
    # each fact once: not "approve (approve) by Bob Ortiz: approved by Bob Ortiz"
    assert "outcome: approved by Bob Ortiz (after 12m); amount: requested 20,000, approved 9,000" in text
    # in the order it happened: the refusal at 09:05, then the decision at 09:12
    assert text.index("09:05:00 REFUSED Dave Kim") < text.index("09:12:00 Bob Ortiz chose approve")
    # agents, actions, timeline
    assert "compliance: 1 call, 1 attempt, 0+0 tokens" in text
    assert "pay: done - {'value': {'payment_id': 'PAY-R-1'" in text or "pay: done" in text
    assert "Timeline" in text


def test_summary_says_why_no_gate_and_why_a_boundary_stopped(engine: Engine) -> None:
    small = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "5000"}, "alice")
    big = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "60000"}, "alice")
    assert "approve: not needed - no approval needed: \u201cinputs.amount > 10000.0 || " \
           "signals.risk.verdict != 'ok'\u201d is false" in text_of(engine, small.ref)
    stopped = text_of(engine, big.ref)
    assert "State: stopped (boundary: Payments above 50,000 need the treasury process" in stopped
    assert "amount-limit: VIOLATED -> stop: inputs.amount <= 50000.0 (inputs.amount=60,000)" in stopped


def test_summary_of_escalations_conflicts_and_retries(test_engine: Engine, clock: FakeClock) -> None:
    run = test_engine.start_run("escalating", {}, "alice")
    clock.advance(timedelta(minutes=20))
    test_engine.fire_due_timers()
    clock.advance(timedelta(minutes=10))
    test_engine.fire_due_timers()
    test_engine.claim(run.ref, "dave")
    text = text_of(test_engine, run.ref)
    assert "2026-01-05 09:20:00 approve: reminder level 1 pinged role:finance-approver" in text
    assert ("2026-01-05 09:30:00 approve: escalated level 2 pinged role:finance-lead - "
            "no decision within 30m at level 1") in text
    assert "approve: claimed by Dave Kim" in text

    conflict = test_engine.start_run("conflicts", {"policy": "ask"}, "alice")
    test_engine.decide(conflict.ref, "frank", "follow_risk", reason="Domestic vendor")
    text = text_of(test_engine, conflict.ref)
    assert "verdict: disagreement (research ok, risk warn, compliance block); policy ask" in text
    assert 'verdict: Frank Li chose to follow risk: "Domestic vendor"' in text

    flaky = test_engine.start_run("agent-failures", {"mode": "flaky"}, "alice")
    assert "agent flaky: 2 failed attempts, then a signal (last error: upstream 503 (attempt 2))" in \
        text_of(test_engine, flaky.ref)
    broken = test_engine.start_run("agent-failures", {"mode": "broken"}, "alice")
    failed = text_of(test_engine, broken.ref)
    assert "agent broken: FAILED after 2 attempts: " in failed
    assert "failed after" not in failed.lower().replace("failed after 2 attempts: ", "")  # said once


def test_json_export_validates_against_the_documented_schema(engine: Engine) -> None:
    schema = json.loads((ROOT / "docs" / "trace-schema.json").read_text())
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    engine.decide(run.ref, "carol", "reject", reason="Duplicate")
    engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "60000"}, "alice")
    for ref in ("R-1", "R-2"):
        exported = export_run(engine.db, engine.get_run(ref))
        jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(
            json.loads(json.dumps(exported)))
        assert exported["verification"] == {"ok": True, "first_break": None}
    with engine.db.read() as s:
        kinds = {e.kind for e in s.exec(select(TraceEntry))}
    assert kinds <= set(schema["properties"]["entries"]["items"]["properties"]["kind"]["enum"])
