"""Escalation chains in the engine, driven by a fake clock: no sleeping."""

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import select

from orchestrator.clock import FakeClock
from orchestrator.engine import Engine
from orchestrator.errors import BatonError
from orchestrator.events import DomainEvent
from orchestrator.timers import TimerService
from storage import trace
from storage.models import Event, Timer, TraceEntry
from tests.conftest import TEST_FLOWS

M = timedelta(minutes=1)


def events(engine: Engine, kind: str) -> list[DomainEvent]:
    """The stored events of `kind`, read as the durable sink reads them (with their entry)."""
    with engine.db.read() as s:
        return [DomainEvent.from_rows(e, trace.entry_at(s, trace.chain_of(e.run_id), e.seq))
                for e in s.exec(select(Event).where(Event.kind == kind).order_by(Event.id))]


def traced(engine: Engine, ref: str, kind: str) -> list[TraceEntry]:
    with engine.db.read() as s:
        return list(s.exec(select(TraceEntry).where(TraceEntry.chain == ref, TraceEntry.kind == kind)
                           .order_by(TraceEntry.seq)))


def tick(engine: Engine, clock: FakeClock, minutes: float) -> int:
    clock.advance(timedelta(minutes=minutes))
    return engine.fire_due_timers()


def test_unanswered_gate_escalates_level_by_level_reminds_repeats_then_fails_closed(
        test_engine: Engine, clock: FakeClock, ledger: Callable) -> None:
    t0 = clock.now()
    run = test_engine.start_run("escalating", {}, "alice")
    (gate,) = test_engine.open_gates(run.id)
    assert gate.next_deadline == t0 + 30 * M and gate.esc_level == 0
    assert events(test_engine, "gate_opened")[0].data["escalation"]["notify"] == ["role:finance-approver"]

    assert tick(test_engine, clock, 19) == 0
    assert tick(test_engine, clock, 1) == 1  # 10 minutes before the deadline
    assert events(test_engine, "reminder")[0].data["notify"] == ["role:finance-approver"]

    assert tick(test_engine, clock, 10) == 1  # 30m: level 2
    (gate,) = test_engine.open_gates(run.id)
    assert gate.esc_level == 1 and "dave" in gate.approvers
    first = events(test_engine, "escalated")[0]
    assert first.data["notify"] == ["role:finance-lead"]
    assert first.data["why"] == "no decision within 30m at level 1"

    assert tick(test_engine, clock, 60) == 1  # level 3: the channel
    assert tick(test_engine, clock, 120) == 1  # repeat: round 2, level 1 again
    (gate,) = test_engine.open_gates(run.id)
    assert (gate.esc_level, gate.esc_cycle) == (0, 1)
    for minutes in (20, 10, 60):  # reminder, level 2, level 3
        assert tick(test_engine, clock, minutes) == 1
    assert test_engine.get_run(run.ref).status == "waiting"
    assert tick(test_engine, clock, 120) == 1  # exhausted
    final = test_engine.get_run(run.ref)
    assert final.status == "rejected" and ledger() == []
    assert ("no decision after 2 rounds of escalation chain 'chain' (7h): rejected (fail closed)"
            in (final.reason or ""))
    levels = [(e.data["level"], e.data["cycle"], e.created_at - t0)
              for e in traced(test_engine, run.ref, "escalated")]
    assert levels == [(2, 1, 30 * M), (3, 1, 90 * M), (1, 2, 210 * M), (2, 2, 240 * M),
                      (3, 2, 300 * M)]
    assert len(traced(test_engine, run.ref, "reminder")) == 2


def test_claim_pauses_pings_and_re_escalates_after_the_claim_timeout(
        test_engine: Engine, clock: FakeClock) -> None:
    run = test_engine.start_run("escalating", {}, "alice")
    with pytest.raises(BatonError, match="only an approver"):
        test_engine.claim(run.ref, "dave")
    message = test_engine.claim(run.ref, "bob")
    assert "pings are paused" in message
    (gate,) = test_engine.open_gates(run.id)
    assert (gate.esc_state, gate.claimed_by) == ("claimed", "bob")
    assert tick(test_engine, clock, 59) == 0  # the 30m deadline and its reminder do nothing
    assert events(test_engine, "reminder") == [] and events(test_engine, "escalated") == []
    assert tick(test_engine, clock, 1) == 1  # claim timeout: on to the next level
    escalated = events(test_engine, "escalated")
    assert escalated[0].data["level"] == 2
    assert "Bob Ortiz claimed it but did not decide within 1h" in escalated[0].data["why"]
    # the gate stayed open throughout; a decision still works
    assert test_engine.decide(run.ref, "dave", "approve").outcome == "approve"


def test_a_snooze_past_the_deadline_moves_the_next_step_to_its_end(
        test_engine: Engine, clock: FakeClock) -> None:
    """Snoozing 1h at a level with 30m to go: no pings for the hour, and the chain moves on
    when the snooze ends (it used to restart the level's 30m wait there, so every snooze
    postponed the chain by more than its own length)."""
    t0 = clock.now()
    run = test_engine.start_run("escalating", {}, "alice")
    with pytest.raises(BatonError, match="snooze for one of: 15m, 1h"):
        test_engine.snooze(run.ref, "bob", "3d")
    message = test_engine.snooze(run.ref, "bob", "1h")
    assert "snoozed until" in message and "next step at" in message
    (gate,) = test_engine.open_gates(run.id)
    assert (gate.esc_state, gate.next_deadline) == ("snoozed", t0 + 60 * M)
    assert tick(test_engine, clock, 59) == 0  # the 30m deadline and its reminder do nothing
    assert events(test_engine, "reminder") == []
    assert tick(test_engine, clock, 1) == 1
    (gate,) = test_engine.open_gates(run.id)
    assert gate.esc_level == 1 and gate.next_deadline == clock.now() + 60 * M
    assert (events(test_engine, "escalated")[-1].data["why"]
            == "no decision at level 1 by the end of its snooze")


def test_a_short_snooze_pings_again_at_its_end_and_keeps_the_deadline(
        test_engine: Engine, clock: FakeClock) -> None:
    t0 = clock.now()
    run = test_engine.start_run("escalating", {}, "alice")
    test_engine.snooze(run.ref, "bob", "15m")
    (gate,) = test_engine.open_gates(run.id)
    assert gate.next_deadline == t0 + 30 * M and gate.snoozed_until == t0 + 15 * M
    assert tick(test_engine, clock, 15) == 1  # snooze over: level 1 pinged again
    assert events(test_engine, "reminder")[-1].entry == "snooze_ended"
    (gate,) = test_engine.open_gates(run.id)
    assert (gate.esc_state, gate.next_deadline) == ("waiting", t0 + 30 * M)
    assert tick(test_engine, clock, 15) == 1  # the level's own deadline, unchanged
    assert test_engine.open_gates(run.id)[0].esc_level == 1


def test_a_stale_or_duplicate_timer_does_nothing(test_engine: Engine, clock: FakeClock) -> None:
    run = test_engine.start_run("escalating", {}, "alice")
    with test_engine.db.read() as s:
        old = s.exec(select(Timer).where(Timer.kind == "escalate")).one()
    test_engine.claim(run.ref, "bob")  # replaces the gate's timers
    clock.advance(timedelta(minutes=45))
    before = test_engine.open_gates(run.id)[0]
    assert test_engine.fire_timer(old.id) is False  # type: ignore[arg-type]
    after = test_engine.open_gates(run.id)[0]
    assert (after.esc_level, after.esc_state, after.version) == (before.esc_level, "claimed", before.version)
    with test_engine.db.read() as s:
        claim_id = s.exec(select(Timer.id).where(Timer.kind == "claim_expired")).one()
    assert test_engine.fire_timer(claim_id) is False  # woken early: not due yet, stays pending
    clock.advance(timedelta(minutes=15))
    (claim_timer,) = test_engine.due_timers()
    assert claim_timer == claim_id
    assert test_engine.fire_timer(claim_timer) is True
    assert test_engine.fire_timer(claim_timer) is False  # delivered twice: once only
    assert len(events(test_engine, "escalated")) == 1


def test_reassign_lets_someone_else_decide(test_engine: Engine) -> None:
    run = test_engine.start_run("two-approvals", {"amount": "10"}, "alice")
    with pytest.raises(BatonError, match="Alice Ng started R-1 and cannot approve it"):
        test_engine.reassign(run.ref, "bob", "alice")
    with pytest.raises(BatonError, match=r"only an approver .* or an admin can reassign"):
        test_engine.reassign(run.ref, "henry", "henry")
    assert test_engine.reassign(run.ref, "bob", "henry") == "Henry Wu can now decide R-1"
    test_engine.decide(run.ref, "henry", "approve")
    assert test_engine.decide(run.ref, "dave", "approve").outcome == "approve"
    (entry,) = traced(test_engine, run.ref, "reassigned")
    assert (entry.actor, entry.data["to"]) == ("bob", "henry")


def test_a_restart_re_arms_timers_and_the_chain_continues(
        make_engine: Callable[..., Engine], clock: FakeClock) -> None:
    first = make_engine(TEST_FLOWS)
    run = first.start_run("escalating", {}, "alice")
    tick(first, clock, 30)
    assert first.open_gates(run.id)[0].esc_level == 1
    first.shutdown()
    first.db.dispose()

    second = make_engine(TEST_FLOWS)  # a new process, as far as the database can tell
    service = TimerService(second, horizon=timedelta(hours=2))
    try:
        service.start(paused=True)  # look at what it armed, then let the test's clock drive
        jobs = {job.id for job in service.scheduler.get_jobs()}
        (pending,) = second.pending_timers()
        assert f"timer-{pending[0]}" in jobs
        assert tick(second, clock, 60) == 1
        assert second.open_gates(run.id)[0].esc_level == 2  # level 3, where the chain left off
    finally:
        service.shutdown()


def test_the_scheduler_fires_a_due_timer_by_itself(make_engine: Callable[..., Engine]) -> None:
    """APScheduler wakes the engine: a timer already due is fired without anyone asking."""
    from orchestrator.clock import SystemClock

    engine = make_engine(TEST_FLOWS, clock=SystemClock())
    fired = threading.Event()
    service = TimerService(engine)
    original = engine.fire_timer

    def observed(timer_id: int) -> bool:
        result = original(timer_id)
        fired.set()
        return result

    engine.fire_timer = observed  # type: ignore[method-assign]
    try:
        service.start()
        run = engine.start_run("external-signals", {}, "alice")
        with engine.db.write() as s:  # make the settle window end now
            timer = s.exec(select(Timer)).one()
            timer.due_at = engine.clock.now()
            s.add(timer)
        service.arm(timer.id, timer.due_at)  # type: ignore[arg-type]
        assert fired.wait(10)
        assert engine.get_run(run.ref).status == "succeeded"
    finally:
        service.shutdown()


def test_a_sweep_leaves_armed_timers_alone_and_re_arms_what_has_gone(
        test_engine: Engine, clock: FakeClock) -> None:
    """Every sweep arms the timers due within the horizon; one armed already keeps its job
    (replacing it cost as much as adding it: seconds per sweep with thousands of timers)."""
    run = test_engine.start_run("escalating", {}, "alice")
    service = TimerService(test_engine, horizon=timedelta(hours=2))
    try:
        service.start(paused=True)
        pending = test_engine.pending_timers()
        assert pending
        jobs = {timer_id: service.scheduler.get_job(f"timer-{timer_id}") for timer_id, _ in pending}
        assert all(job is not None for job in jobs.values())
        service.sweep()
        assert all(service.scheduler.get_job(f"timer-{i}") is job for i, job in jobs.items())
        first = next(iter(jobs))
        service.scheduler.remove_job(f"timer-{first}")  # fired early, say: still pending
        service.sweep()
        assert service.scheduler.get_job(f"timer-{first}") is not None
        assert test_engine.open_gates(run.id)[0].status == "open"
    finally:
        service.shutdown()
