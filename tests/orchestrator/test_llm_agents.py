"""LLM agents against a real OpenAI-compatible HTTP server on loopback, with scripted
answers: parallel calls, retries on 429/5xx/timeouts, structured output and its JSON-mode
fallback, invalid answers, token and cost accounting. The openai client is not patched."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from sqlmodel import select
from structlog.testing import capture_logs

from orchestrator.clock import FakeClock
from orchestrator.engine import Engine
from storage.models import Signal, TraceEntry
from tests.conftest import TEST_FLOWS
from tests.fakes import FakeOpenAI, Reply, agent, point_baton_at, signal


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        point_baton_at(monkeypatch, server)
        yield server


@pytest.fixture
def test_engine(llm: FakeOpenAI, make_engine: Callable[..., Engine]) -> Engine:
    """The engine, started after the fake server's settings (prices, model) are set."""
    return make_engine(TEST_FLOWS)


@pytest.fixture
def info_logs() -> Iterator[None]:
    """Log at info level for capture_logs, whatever an earlier test configured."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    yield
    structlog.configure(**saved)


def trace(engine: Engine, ref: str, kind: str) -> list[dict]:
    with engine.db.read() as s:
        return [e.data for e in s.exec(select(TraceEntry).where(
            TraceEntry.chain == ref, TraceEntry.kind == kind).order_by(TraceEntry.seq))]


# -- parallel ---------------------------------------------------------------------------------
def test_three_llm_agents_in_parallel_give_three_signals_with_usage(
        test_engine: Engine, llm: FakeOpenAI) -> None:
    llm.script(Reply(signal(summary="No issues in past cases"), delay=0.3), match=agent("research"))
    llm.script(Reply(signal("warn", "medium", 0.6, "Unusual amount"), delay=0.3,
                     prompt_tokens=200, completion_tokens=50), match=agent("risk"))
    llm.script(Reply(signal(summary="No sanctions hit"), delay=0.3, model="test-large-2025-01"),
               match=agent("compliance"))

    run = test_engine.start_run("llm-parallel", {"vendor": "ACME", "amount": 1200}, "alice")

    assert test_engine.get_run(run.ref).status == "succeeded"
    signals = {d["agent"]: d for d in trace(test_engine, run.ref, "signal")}
    assert set(signals) == {"research", "risk", "compliance"}
    assert signals["risk"]["verdict"] == "warn" and signals["risk"]["summary"] == "Unusual amount"
    assert (signals["risk"]["tokens_in"], signals["risk"]["tokens_out"]) == (200, 50)
    assert signals["risk"]["cost"] == pytest.approx((200 * 1.0 + 50 * 4.0) / 1e6)
    assert signals["compliance"]["model"] == "test-large-2025-01"  # what the server says answered
    assert signals["compliance"]["cost"] == pytest.approx((120 * 10.0 + 40 * 30.0) / 1e6)
    assert all(d["latency_ms"] >= 300 and d["attempts"] == 1 for d in signals.values())
    with test_engine.db.read() as s:
        rows = list(s.exec(select(Signal).where(Signal.run_id == run.id)))
    assert sum(r.tokens_in + r.tokens_out for r in rows) == test_engine.get_run(run.ref).tokens_used
    # the three calls were in flight at the same time on the server
    requests = llm.requests
    assert len(requests) == 3
    assert max(r.started for r in requests) < min(r.finished or 0 for r in requests)


def test_what_is_sent_structured_output_settings_and_no_client_retries(
        test_engine: Engine, llm: FakeOpenAI) -> None:
    llm.script(Reply(signal()))
    test_engine.start_run("llm-parallel", {"vendor": "ACME", "amount": 1200}, "alice")
    bodies = {r.system.split('"')[1]: r.body for r in llm.requests}
    risk = bodies["risk"]
    assert risk["model"] == "test-small" and bodies["compliance"]["model"] == "test-large-2025"
    assert risk["temperature"] == 0 and "temperature" not in bodies["research"]
    assert risk["max_completion_tokens"] == 300 and bodies["research"]["max_completion_tokens"] == 1000
    schema = risk["response_format"]
    assert schema["type"] == "json_schema" and schema["json_schema"]["strict"] is True
    assert schema["json_schema"]["schema"]["required"] == [
        "verdict", "severity", "confidence", "summary", "rationale", "evidence"]
    # the template's values arrive as JSON data, and the run's data follows, delimited
    research = next(r for r in llm.requests if r.body is bodies["research"])
    assert research.user.startswith('<task>\nVendor "ACME" asks for 1200.0.\n</task>\n\n<data>\n{')
    assert research.user.endswith("}\n</data>") and '"vendor": "ACME"' in research.user


def test_max_concurrency_bounds_calls_in_flight(make_engine, llm: FakeOpenAI, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    flow = (Path(__file__).resolve().parent.parent / "flows" / "llm-parallel.yaml").read_text()
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "bounded.yaml").write_text(flow.replace("name: llm-parallel", "name: bounded").replace(
        "- parallel: [research, risk, compliance]",
        "- parallel: {agents: [research, risk, compliance], max_concurrency: 2}"))
    engine = make_engine(flows)
    llm.script(Reply(signal(), delay=0.3))
    run = engine.start_run("bounded", {"vendor": "ACME", "amount": 1}, "alice")
    assert engine.get_run(run.ref).status == "succeeded"
    spans = sorted((r.started, r.finished or 0) for r in llm.requests)
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == 2


# -- retries -------------------------------------------------------------------------------------
def test_429_with_retry_after_then_success(test_engine: Engine, llm: FakeOpenAI, clock: FakeClock) -> None:
    llm.script(Reply(status=429, error="Rate limit reached", retry_after=7), Reply(signal()),
               match=agent("flaky"))
    run = test_engine.start_run("llm-retries", {"mode": "flaky"}, "alice")
    assert test_engine.get_run(run.ref).status == "succeeded"
    (found,) = [d for d in trace(test_engine, run.ref, "signal") if d["agent"] == "flaky"]
    assert found["attempts"] == 2 and found["verdict"] == "ok"
    (retry,) = found["failed_attempts"]
    assert retry["attempt"] == 1 and "429" in retry["error"] and "Rate limit reached" in retry["error"]
    assert retry["retry_in_s"] >= 7  # Retry-After wins over the 1 s backoff
    assert clock.slept == [pytest.approx(retry["retry_in_s"], abs=1e-3)]
    assert [r.status for r in llm.requests] == [429, 200]


def test_5xx_is_retried_and_4xx_is_not(test_engine: Engine, llm: FakeOpenAI) -> None:
    llm.script(Reply(status=503, error="overloaded"), Reply(signal()), match=agent("flaky"))
    run = test_engine.start_run("llm-retries", {"mode": "flaky"}, "alice")
    assert test_engine.get_run(run.ref).status == "succeeded"

    llm.script(Reply(status=401, error="Incorrect API key provided"), match=agent("sloppy"))
    run = test_engine.start_run("llm-retries", {"mode": "sloppy"}, "alice")
    final = test_engine.get_run(run.ref)
    assert final.status == "failed" and "401" in (final.reason or "")
    (failed,) = trace(test_engine, run.ref, "agent_failed")
    assert failed["attempts"] == 1 and "check the API key" in failed["error"]


def test_rate_limit_asking_longer_than_max_backoff_is_not_waited_out(
        test_engine: Engine, llm: FakeOpenAI, clock: FakeClock) -> None:
    llm.script(Reply(status=429, retry_after=3600), match=agent("flaky"))
    run = test_engine.start_run("llm-retries", {"mode": "flaky"}, "alice")
    assert test_engine.get_run(run.ref).status == "failed"
    (failed,) = trace(test_engine, run.ref, "agent_failed")
    assert failed["attempts"] == 1 and "longer than retry.max_backoff (20s)" in failed["error"]
    assert clock.slept == []


def test_a_server_that_never_answers_fails_the_agent_within_its_timeout_budget(
        test_engine: Engine, llm: FakeOpenAI, clock) -> None:  # type: ignore[no-untyped-def]
    llm.script(Reply(hang=True))
    started = time.monotonic()
    run = test_engine.start_run("llm-retries", {"mode": "silent"}, "alice")
    elapsed = time.monotonic() - started
    final = test_engine.get_run(run.ref)
    assert final.status == "failed" and final.outcome == "agent_failed"
    (failed,) = trace(test_engine, run.ref, "agent_failed")
    assert failed["attempts"] == 2 and "timed out after 0.5s" in failed["error"]
    assert [r["attempt"] for r in failed["failed_attempts"]] == [1, 2]
    # Two attempts of 0.5 s each. A request that is never given up on would hang until the
    # fake server stops, at the end of the test: the margin only has to tell those apart.
    assert 1.0 <= elapsed < 10
    assert len(clock.slept) == 1 and clock.slept[0] <= 0.2  # the backoff moved the fake clock
    assert len(llm.requests) == 2


def test_a_server_that_never_answers_escalates_when_the_flow_says_so(
        test_engine: Engine, llm: FakeOpenAI) -> None:
    llm.script(Reply(hang=True))
    run = test_engine.start_run("llm-retries", {"mode": "watched"}, "alice")
    assert test_engine.get_run(run.ref).status == "waiting"
    (gate,) = test_engine.open_gates(run.id)
    assert gate.kind == "agent" and gate.key == "watched-failed"
    assert "timed out" in trace(test_engine, run.ref, "agent_failed")[0]["error"]


def test_an_unreachable_server_is_retried_then_fails(
        test_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    run = test_engine.start_run("llm-retries", {"mode": "sloppy"}, "alice")
    assert test_engine.get_run(run.ref).status == "failed"
    (failed,) = trace(test_engine, run.ref, "agent_failed")
    assert failed["attempts"] == 3 and "could not reach http://127.0.0.1" in failed["error"]


# -- structured output ---------------------------------------------------------------------------
def test_malformed_json_then_valid_json_gives_one_signal(test_engine: Engine, llm: FakeOpenAI) -> None:
    llm.script(Reply('{"verdict": "ok", "summary": '), Reply(signal(summary="Second try")))
    run = test_engine.start_run("llm-retries", {"mode": "sloppy"}, "alice")
    assert test_engine.get_run(run.ref).status == "succeeded"
    (found,) = [d for d in trace(test_engine, run.ref, "signal") if d["agent"] == "sloppy"]
    assert found["summary"] == "Second try" and found["attempts"] == 1
    assert (found["tokens_in"], found["tokens_out"]) == (240, 80)  # both calls are counted
    first, second = llm.requests
    assert second.messages[:2] == first.messages
    assert second.messages[2] == {"role": "assistant", "content": '{"verdict": "ok", "summary": '}
    assert "not valid JSON" in second.messages[3]["content"]


def test_malformed_twice_fails_the_agent_with_the_raw_text(test_engine: Engine, llm: FakeOpenAI) -> None:
    llm.script(Reply("Sure! The payment looks fine to me."))
    run = test_engine.start_run("llm-retries", {"mode": "sloppy"}, "alice")
    final = test_engine.get_run(run.ref)
    assert final.status == "failed" and "invalid answer twice" in (final.reason or "")
    (failed,) = trace(test_engine, run.ref, "agent_failed")
    assert failed["raw"] == "Sure! The payment looks fine to me."
    assert failed["attempts"] == 1  # not retried again by the retry policy: it was told twice
    assert len(llm.requests) == 2
    assert [d["agent"] for d in trace(test_engine, run.ref, "signal")] == ["pick"]  # no guess
    # the two answers were paid for all the same: they count toward the cost and the budget
    assert (failed["tokens_in"], failed["tokens_out"]) == (240, 80) and failed["cost"] > 0
    assert final.tokens_used == 240 + 80


def test_an_answer_outside_the_schema_and_a_truncated_one_get_a_second_chance(
        test_engine: Engine, llm: FakeOpenAI) -> None:
    llm.script(Reply(signal(verdict="maybe")), Reply(signal(), finish_reason="length"))
    run = test_engine.start_run("llm-retries", {"mode": "sloppy"}, "alice")
    assert test_engine.get_run(run.ref).status == "failed"
    (failed,) = trace(test_engine, run.ref, "agent_failed")
    assert "verdict: Input should be 'ok', 'warn' or 'block'" in failed["error"]
    assert "cut off at max_output_tokens (1000)" in failed["error"]
    assert "verdict: Input should be" in llm.requests[1].messages[-1]["content"]


def test_a_refusal_is_a_failure_never_a_signal(test_engine: Engine, llm: FakeOpenAI) -> None:
    llm.script(Reply(None, refusal="I can't help with that."))
    run = test_engine.start_run("llm-retries", {"mode": "sloppy"}, "alice")
    assert test_engine.get_run(run.ref).status == "failed"
    (failed,) = trace(test_engine, run.ref, "agent_failed")
    assert "refused" in failed["error"] and failed["raw"] == "I can't help with that."


def test_a_server_without_structured_outputs_gets_json_mode(
        make_engine, monkeypatch: pytest.MonkeyPatch, info_logs: None) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import TEST_FLOWS

    engine = make_engine(TEST_FLOWS)
    with FakeOpenAI(structured_outputs=False) as server:
        point_baton_at(monkeypatch, server)
        server.script(Reply(signal(summary="From JSON mode")))
        with capture_logs() as logs:
            first = engine.start_run("llm-retries", {"mode": "sloppy"}, "alice")
        second = engine.start_run("llm-retries", {"mode": "sloppy"}, "alice")
        requests = list(server.requests)
    assert engine.get_run(first.ref).status == engine.get_run(second.ref).status == "succeeded"
    assert [(r.response_format, r.status) for r in requests] == [
        ("json_schema", 400), ("json_object", 200), ("json_object", 200)]  # remembered
    assert "The JSON schema of the answer" in requests[1].system
    assert "The JSON schema of the answer" not in requests[0].system
    (signal_entry,) = [d for d in trace(engine, first.ref, "signal") if d["agent"] == "sloppy"]
    assert signal_entry["summary"] == "From JSON mode" and signal_entry["attempts"] == 1
    assert any(e["event"] == "llm_json_mode" and "not supported" in e["error"] for e in logs)


# -- observability ---------------------------------------------------------------------------------
def test_log_lines_carry_run_step_and_agent(test_engine: Engine, llm: FakeOpenAI,
                                           info_logs: None) -> None:
    llm.script(Reply(signal()))
    with capture_logs() as logs:
        run = test_engine.start_run("llm-parallel", {"vendor": "ACME", "amount": 1}, "alice")
    calls = [e for e in logs if e["event"] == "llm_call"]
    assert sorted(e["agent"] for e in calls) == ["compliance", "research", "risk"]
    assert all(e["run"] == run.ref and e["step"] == "parallel-1" for e in calls)
    assert all(e["tokens_in"] == 120 and e["tokens_out"] == 40 and e["latency_ms"] > 0 for e in calls)


def test_an_unpriced_model_costs_zero_with_a_note(make_engine: Callable[..., Engine], llm: FakeOpenAI,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path, info_logs: None) -> None:
    broken = tmp_path / "prices.yaml"
    broken.write_text("models: {test-small: {input: cheap}}")
    monkeypatch.setenv("BATON_LLM_PRICES", str(broken))
    test_engine = make_engine(TEST_FLOWS)  # configuration is read when the engine starts
    llm.script(Reply(signal()))
    with capture_logs() as logs:
        run = test_engine.start_run("llm-parallel", {"vendor": "ACME", "amount": 1}, "alice")
    assert test_engine.get_run(run.ref).status == "succeeded"
    assert all(d["cost"] == 0 and d["tokens_in"] == 120 for d in trace(test_engine, run.ref, "signal"))
    events = [e["event"] for e in logs]
    assert "llm_prices_invalid" in events and events.count("llm_price_unknown") == 3
