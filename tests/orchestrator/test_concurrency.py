"""Exactly one decision per gate, whatever the concurrency: threads in one process and
separate processes deciding the same gate of the same SQLite file."""

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlmodel import select

from orchestrator.engine import Engine
from storage.models import Decision, TraceEntry
from tests.figures import Figures

_engine: Engine | None = None


def _decide_in_child(database_url: str, ledger: str, user: str, option: str) -> str:
    """Runs in a spawned process: its own engine, its own connections."""
    import os

    from orchestrator.bootstrap import open_engine
    from tests.conftest import make_settings

    global _engine
    os.environ["BATON_EXAMPLE_LEDGER"] = ledger
    if _engine is None:
        _engine = open_engine(make_settings(database_url))
    reason = "looks fine" if option == "approve" else "not this one"
    return _engine.decide("R-1", user, option, reason=reason).status


def test_fifty_concurrent_decisions_record_exactly_one(
        engine: Engine, database_url: str, tmp_path: Path, ledger: Callable) -> None:
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    assert engine.get_run(run.ref).status == "waiting"
    people = ["bob", "carol"]
    options = ["approve", "reject"]
    jobs = [(people[i % 2], options[(i // 2) % 2]) for i in range(50)]

    with ThreadPoolExecutor(max_workers=25) as threads, ProcessPoolExecutor(
            max_workers=4, mp_context=multiprocessing.get_context("spawn")) as processes:
        futures = [threads.submit(engine.decide, run.ref, user, option,
                                  reason="looks fine" if option == "approve" else "not this one")
                   for user, option in jobs[:25]]
        futures += [processes.submit(_decide_in_child, database_url, str(tmp_path / "ledger.jsonl"),
                                     user, option) for user, option in jobs[25:]]
        results = [f.result() for f in futures]
    statuses = [r if isinstance(r, str) else r.status for r in results]

    with engine.db.read() as s:
        decisions = s.exec(select(Decision)).all()
        closed = s.exec(select(TraceEntry).where(TraceEntry.kind == "gate_decided")).all()
    assert len(decisions) == 1 and len(closed) == 1
    assert statuses.count("recorded") == 1
    assert set(statuses) <= {"recorded", "refused", "duplicate"}
    final = engine.get_run(run.ref)
    assert final.status == ("succeeded" if decisions[0].effect == "approve" else "rejected")
    assert len(ledger()) == (1 if decisions[0].effect == "approve" else 0)


@pytest.mark.reliability(item="2", promise="Many runs at once: 200 runs started concurrently and "
                         "decided concurrently all complete, each action run once")
def test_two_hundred_runs_started_and_decided_concurrently_all_complete(
        make_engine: Callable[..., Engine], ledger: Callable, figures: Figures) -> None:
    """Also the first start of a flow, racing with itself: its stored version must be
    committed before any other start refers to it."""
    engine = make_engine()
    amounts = [str(20000 + i) for i in range(200)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        runs = list(pool.map(lambda a: engine.start_run(
            "vendor-payment", {"vendor": "ACME", "amount": a}, "alice").ref, amounts))
    assert len(set(runs)) == 200
    assert all(engine.get_run(ref).status == "waiting" for ref in runs)
    people = ["bob", "carol"]
    with ThreadPoolExecutor(max_workers=32) as pool:
        reports = list(pool.map(lambda i: engine.decide(runs[i], people[i % 2], "approve",
                                                        reason="checked"), range(200)))
    figures.add("requests_sent", 400)  # 200 starts, 200 decisions
    figures.add("decisions_recorded", sum(r.status == "recorded" for r in reports))
    figures.add("decisions_lost", 200 - sum(r.status == "recorded" for r in reports))
    assert all(r.outcome == "approve" for r in reports)
    assert all(engine.get_run(ref).status == "succeeded" for ref in runs)
    assert sorted(e["run"] for e in ledger()) == sorted(runs)  # each paid exactly once
