"""KPIs over a scripted set of runs give exactly the expected rates and percentiles."""

from datetime import timedelta

import pytest

from orchestrator.clock import FakeClock
from orchestrator.engine import Engine
from orchestrator.readers.report import stats_lines
from orchestrator.readers.stats import compute, percentile

M = timedelta(minutes=1)


def pay(engine: Engine, amount: str) -> str:
    return engine.start_run("vendor-payment", {"vendor": "ACME", "amount": amount}, "alice").ref


@pytest.fixture
def scripted(engine: Engine, clock: FakeClock) -> Engine:
    pay(engine, "5000")  # no gate
    r2 = pay(engine, "20000")
    clock.advance(10 * M)
    engine.decide(r2, "bob", "approve", reason="ok")  # 10m
    r3 = pay(engine, "20000")
    clock.advance(30 * M)
    engine.decide(r3, "carol", "reject", reason="duplicate")  # 30m
    r4 = pay(engine, "20000")
    clock.advance(20 * M)
    engine.decide(r4, "bob", "request_changes", reason="attach the PO")  # 20m, gate opens again
    clock.advance(40 * M)
    engine.decide(r4, "carol", "approve", reason="PO attached")  # 40m
    pay(engine, "20000")  # left waiting for bob and carol
    pay(engine, "60000")  # stopped by the boundary before any agent
    r7 = pay(engine, "30000")  # risk warns: a conflict first
    clock.advance(5 * M)
    engine.decide(r7, "frank", "follow_risk", reason="known vendor")  # 5m
    clock.advance(60 * M)
    engine.decide(r7, "bob", "approve", reason="ok")  # 60m
    return engine


def test_rates_and_percentiles_are_exact(scripted: Engine) -> None:
    stats = compute(scripted.db, now=scripted.clock.now(), since=timedelta(days=7))
    assert stats.runs == 7
    assert stats.by_status == {"succeeded": 4, "rejected": 1, "waiting": 1, "stopped": 1}
    assert stats.runs_with_people == 5 and stats.intervention_rate == pytest.approx(5 / 7)
    assert stats.gates == 7 and stats.decided == {"approve": 4, "reject": 1, "request_changes": 1}
    assert stats.rate("approve") == pytest.approx(4 / 6)
    assert stats.rate("reject") == pytest.approx(1 / 6)
    assert stats.rate("request_changes") == pytest.approx(1 / 6)
    assert sorted(stats.decision_seconds) == [300, 600, 1200, 1800, 2400, 3600]
    assert stats.median_decision_s == 1500  # between 20m and 30m
    assert stats.p90_decision_s == 3600  # nearest rank: the 6th of 6
    assert stats.escalation_rate == 0
    assert (stats.agent_calls, stats.agent_failures, stats.agent_error_rate) == (18, 0, 0)
    assert dict(stats.pending_by_approver) == {"bob": 1, "carol": 1}
    assert sum(stats.decisions_per_day.values()) == 6


def test_window_and_flow_filters(scripted: Engine, clock: FakeClock) -> None:
    clock.advance(timedelta(days=8))
    assert compute(scripted.db, now=clock.now(), since=timedelta(days=7)).runs == 0
    assert compute(scripted.db, now=clock.now(), since=timedelta(days=30), flow="release-review").runs == 0
    assert compute(scripted.db, now=clock.now(), since=timedelta(days=30),
                   flow="vendor-payment").runs == 7


def test_stats_in_words(scripted: Engine) -> None:
    lines = "\n".join(stats_lines(compute(scripted.db, now=scripted.clock.now()), scripted.org))
    assert "Runs: 7 (succeeded 4" in lines
    assert "Human intervention: 71% of runs needed a person" in lines
    assert "Decisions: 6 gates decided: 67% approved, 17% rejected, 17% sent back for changes" in lines
    assert "Time to decision: median 25m, p90 1h (6 decided by people)" in lines
    assert "Most pending: Bob Ortiz 1, Carol Diaz 1" in lines


def test_nearest_rank_percentile() -> None:
    assert percentile([], 90) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile(list(range(1, 11)), 90) == 9
    assert percentile(list(range(1, 101)), 50) == 50
