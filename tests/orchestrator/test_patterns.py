"""Supervisor (route), planner-executor (plan) and the loop guard."""

from collections.abc import Callable
from datetime import timedelta

from sqlmodel import select

from orchestrator.clock import FakeClock
from orchestrator.engine import Engine
from storage.models import TraceEntry


def entries(engine: Engine, ref: str, kind: str) -> list[TraceEntry]:
    with engine.db.read() as s:
        return list(s.exec(select(TraceEntry).where(TraceEntry.chain == ref, TraceEntry.kind == kind)
                           .order_by(TraceEntry.seq)))


def test_supervisor_picks_branches_until_done_and_traces_why(engine: Engine) -> None:
    run = engine.start_run("support-triage", {"service": "payments-api", "severity": "sev1"}, "frank")
    assert engine.get_run(run.ref).status == "waiting"
    (gate,) = engine.open_gates(run.id)
    assert gate.key == "post-status" and gate.node == "supervise.comms.post-status"
    assert engine.decide(run.ref, "grace", "approve").outcome == "approve"
    assert engine.get_run(run.ref).status == "succeeded"
    picks = [(e.data["branch"], e.data["why"]) for e in entries(engine, run.ref, "route")]
    assert picks == [
        ("diagnose", "No diagnosis yet: start with the diagnostics agent"),
        ("comms", "A sev1 with a diagnosis needs customer communications"),
        ("done", "Diagnosis done, and communications done or not needed"),
    ]


def test_supervisor_skips_branches_it_does_not_need(engine: Engine) -> None:
    run = engine.start_run("support-triage", {"service": "web", "severity": "sev3"}, "frank")
    assert engine.get_run(run.ref).status == "succeeded"
    assert [e.data["branch"] for e in entries(engine, run.ref, "route")] == ["diagnose", "done"]


def test_unknown_branch_is_refused_and_traced(test_engine: Engine) -> None:
    run = test_engine.start_run("route-unknown", {}, "alice")
    final = test_engine.get_run(run.ref)
    assert final.status == "failed" and "unknown branch 'nowhere'" in (final.reason or "")
    (refused,) = entries(test_engine, run.ref, "route_refused")
    assert refused.data == {"route": "pick", "router": "router", "branch": "nowhere",
                            "allowed": ["work"], "why": "I made it up"}
    assert entries(test_engine, run.ref, "signal") == []  # the worker never ran


def test_planner_executor_joins_results(engine: Engine, ledger: Callable) -> None:
    run = engine.start_run("release-review", {"version": "2.4.0", "components": "api, web, db"},
                           "grace")
    assert engine.get_run(run.ref).status == "waiting"
    (plan,) = entries(engine, run.ref, "plan")
    assert plan.data["subtasks"] == ["check api", "check web", "check db"]
    assert plan.data["verdict"] == "warn" and plan.data["summary"] == "3 subtasks: 2 ok, 1 warn"
    executors = [e.data for e in entries(engine, run.ref, "signal") if e.data["agent"] == "checker"]
    assert [d["verdict"] for d in executors] == ["ok", "ok", "warn"]
    assert engine.decide(run.ref, "grace", "approve", reason="Rollback script added").outcome
    assert engine.get_run(run.ref).status == "succeeded"
    assert [e["kind"] for e in ledger()] == ["release"]


def test_clean_plan_needs_no_gate(engine: Engine) -> None:
    run = engine.start_run("release-review", {"version": "2.4.1", "components": "api,web"}, "grace")
    assert engine.get_run(run.ref).status == "succeeded"
    assert entries(engine, run.ref, "gate_skipped")[0].data["values"] == {
        "signals.review.verdict": "ok"}


def test_loop_guard_stops_a_supervisor_that_never_finishes(test_engine: Engine) -> None:
    run = test_engine.start_run("endless", {}, "alice")
    final = test_engine.get_run(run.ref)
    assert (final.status, final.outcome) == ("stopped", "loop_guard")
    (guard,) = entries(test_engine, run.ref, "boundary")
    assert guard.data["boundary"] == "limits.max_visits" and guard.data["passed"] is False
    assert len(entries(test_engine, run.ref, "route")) == 3


def test_loop_guard_max_visits_bounds_request_changes(test_engine: Engine, clock: FakeClock) -> None:
    run = test_engine.start_run("slow-approval", {"amount": "10"}, "alice")
    test_engine.decide(run.ref, "bob", "request_changes", reason="again")
    assert test_engine.get_run(run.ref).status == "waiting"
    test_engine.decide(run.ref, "carol", "request_changes", reason="and again")
    final = test_engine.get_run(run.ref)
    assert (final.status, final.outcome) == ("stopped", "loop_guard")
    assert "visits to step agent-1" in (final.reason or "")


def test_an_action_reads_the_runs_signals(test_engine: Engine, ledger: Callable) -> None:
    """`ctx.signals` is read when the action asks for it, after the transaction that
    started the action has committed: the same signals the gate saw."""
    run = test_engine.start_run("slow-approval", {"amount": "10"}, "alice")
    assert test_engine.decide(run.ref, "bob", "approve").outcome == "approve"
    assert test_engine.get_run(run.ref).status == "succeeded"
    assert [e["verdicts"] for e in ledger()] == [{"check": "ok"}]


def test_loop_guard_max_duration(test_engine: Engine, clock: FakeClock, ledger: Callable) -> None:
    run = test_engine.start_run("slow-approval", {"amount": "10"}, "alice")
    clock.advance(timedelta(hours=3))
    assert test_engine.decide(run.ref, "bob", "approve").outcome == "approve"
    final = test_engine.get_run(run.ref)
    assert (final.status, final.outcome) == ("stopped", "loop_guard")
    assert "max_duration" in (final.reason or "")
    assert ledger() == []
