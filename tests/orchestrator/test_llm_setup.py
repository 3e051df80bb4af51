"""A setup problem goes to the operator and the requester, not to approvers (issue 24,
item 4). What can be known before a run starts (no key, a server or key the settings do not
allow) refuses the run with what is missing and how to fix it; a run whose model cannot be
reached (connection refused, 401, 404) stops and says so, and no gate is opened. Through
the real openai client against the loopback fake, in `vendor-payment-llm`, whose compliance
agent escalates to finance approvers when it fails for any other reason."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator

import pytest
import structlog
from sqlmodel import select
from structlog.testing import capture_logs

from orchestrator.engine import Engine
from orchestrator.errors import SetupError
from storage.models import Gate, Run, TraceEntry
from tests.fakes import FakeOpenAI, Reply, point_baton_at

PAYMENT = {"vendor": "ACME", "amount": 20000, "note": "Office chairs"}


@pytest.fixture
def warnings_logged() -> Iterator[None]:
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    yield
    structlog.configure(**saved)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


def gates_and_runs(engine: Engine) -> tuple[list[Gate], list[Run]]:
    with engine.db.read() as s:
        return list(s.exec(select(Gate))), list(s.exec(select(Run)))


def test_no_key_is_said_before_the_run_starts(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                              warnings_logged: None) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with capture_logs() as logs, pytest.raises(SetupError) as refused:
        engine.start_run("vendor-payment-llm", PAYMENT, "alice")
    message = str(refused.value)
    assert message.startswith("vendor-payment-llm cannot run on this Baton server: it is not set "
                              "up for the flow's llm agents.")
    assert ("- research, risk, compliance: no API key for https://api.openai.com/v1: set "
            "OPENAI_API_KEY (for a local server such as Ollama, set OPENAI_BASE_URL and any value "
            "will do)") in message
    assert "nothing was started and nobody was asked to decide" in message
    assert gates_and_runs(engine) == ([], [])
    assert [e["event"] for e in logs] == ["run_refused_setup"]
    report = engine.setup_report()
    assert [p.agent for p in report["vendor-payment-llm"]] == ["research", "risk", "compliance"]
    assert report["vendor-payment"] == []


@pytest.mark.parametrize(("status", "error", "hint"), [
    (401, "Incorrect API key provided", "(check the API key in OPENAI_API_KEY)"),
    (404, "The model `gpt-4o-mini` does not exist", "(check the model name 'test-small'"),
])
def test_a_refused_key_or_unknown_model_stops_the_run_without_asking_approvers(
        make_engine: Callable[..., Engine], monkeypatch: pytest.MonkeyPatch,
        status: int, error: str, hint: str) -> None:
    with FakeOpenAI() as llm:
        point_baton_at(monkeypatch, llm)
        monkeypatch.setenv("BATON_LLM_MODEL", "test-small")
        engine = make_engine()
        llm.script(Reply(status=status, error=error))
        run = engine.start_run("vendor-payment-llm", PAYMENT, "alice")
        calls = len(llm.requests)
    finished = engine.get_run(run.ref)
    assert (finished.status, finished.outcome) == ("failed", "setup")
    assert f"answered {status}: {error} {hint}" in (finished.reason or "")
    assert "a setup problem for the Baton operator" in finished.reason
    assert calls == 3  # one per agent: a setup problem is not retried
    gates, _ = gates_and_runs(engine)
    assert gates == []  # the compliance agent's on_failure: escalate opened nothing


def test_a_server_that_cannot_be_reached_is_retried_then_stops_the_run(
        make_engine: Callable[..., Engine], monkeypatch: pytest.MonkeyPatch, clock) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{closed_port()}/v1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a local server needs none
    engine = make_engine()
    run = engine.start_run("vendor-payment-llm", PAYMENT, "alice")
    finished = engine.get_run(run.ref)
    assert (finished.status, finished.outcome) == ("failed", "setup")
    assert "could not reach its model after 3 attempts: could not reach" in finished.reason
    assert len(clock.slept) == 6  # three agents, two backoffs each: a restart would have helped
    with engine.db.read() as s:
        failed = [e.data for e in s.exec(select(TraceEntry).where(TraceEntry.kind == "agent_failed"))]
    assert len(failed) == 3 and all(d["setup"] for d in failed)
    assert gates_and_runs(engine)[0] == []
