"""Agents: concurrency of parallel steps, timeouts, retries with backoff, failures traced."""

from sqlmodel import select

from orchestrator.engine import Engine
from storage.models import Signal, TraceEntry


def trace(engine: Engine, ref: str, kind: str) -> list[dict]:
    with engine.db.read() as s:
        return [e.data for e in s.exec(select(TraceEntry).where(
            TraceEntry.chain == ref, TraceEntry.kind == kind).order_by(TraceEntry.seq))]


def test_parallel_agents_run_at_the_same_time(test_engine: Engine, testagents) -> None:
    testagents.spans.clear()
    run = test_engine.start_run("parallel-slow", {}, "alice")
    assert test_engine.get_run(run.ref).status == "succeeded"
    spans = [s for s in testagents.spans if s[0] in "abc"]
    assert len(spans) == 3
    # all three were running at once: every one started before any finished
    assert max(start for _, start, _ in spans) < min(end for _, _, end in spans)
    with test_engine.db.read() as s:
        latencies = [sig.latency_ms for sig in s.exec(select(Signal))]
    assert all(900 < ms < 5000 for ms in latencies)


def test_retries_with_backoff_then_a_signal(test_engine: Engine) -> None:
    run = test_engine.start_run("agent-failures", {"mode": "flaky"}, "alice")
    assert test_engine.get_run(run.ref).status == "succeeded"
    (signal,) = [d for d in trace(test_engine, run.ref, "signal") if d["agent"] == "flaky"]
    assert signal["attempts"] == 3 and signal["summary"] == "answered on attempt 3"
    retries = signal["failed_attempts"]
    assert [r["attempt"] for r in retries] == [1, 2]
    # exponential backoff with equal jitter: 2s then 4s, each between half and all of it
    assert 1.0 <= retries[0]["retry_in_s"] <= 2.0 and 2.0 <= retries[1]["retry_in_s"] <= 4.0
    # the fake clock was moved instead of waiting
    assert [round(s, 3) for s in test_engine.clock.slept] == [r["retry_in_s"] for r in retries]


def test_failure_after_the_last_retry_is_traced_and_fails_the_run(test_engine: Engine) -> None:
    run = test_engine.start_run("agent-failures", {"mode": "broken"}, "alice")
    final = test_engine.get_run(run.ref)
    assert final.status == "failed" and "the model server is on fire" in (final.reason or "")
    (failed,) = trace(test_engine, run.ref, "agent_failed")
    assert failed["attempts"] == 2 and "RuntimeError" in failed["error"]


def test_on_failure_continue_records_the_failure_and_goes_on(test_engine: Engine) -> None:
    run = test_engine.start_run("agent-failures", {"mode": "continue"}, "alice")
    final = test_engine.get_run(run.ref)
    # the gate condition reads signals.tolerated.failed
    assert final.status == "waiting"
    assert test_engine.open_gates(run.id)[0].key == "after"


def test_per_call_timeout(test_engine: Engine) -> None:
    run = test_engine.start_run("agent-failures", {"mode": "hangs"}, "alice")
    assert test_engine.get_run(run.ref).status == "failed"
    (failed,) = trace(test_engine, run.ref, "agent_failed")
    assert failed["attempts"] == 2 and "timed out after 0.2s" in failed["error"]


def test_invalid_output_is_never_guessed_and_not_retried(test_engine: Engine) -> None:
    run = test_engine.start_run("agent-failures", {"mode": "bad"}, "alice")
    assert test_engine.get_run(run.ref).status == "failed"
    (failed,) = trace(test_engine, run.ref, "agent_failed")
    assert failed["attempts"] == 1
    assert "invalid output: verdict" in failed["error"]
