"""Structured output with the servers people run (issue 21, item 9): with `response_format:
auto`, a server that refuses the JSON-schema request in any way is asked again in JSON mode,
through the real openai client against the loopback fake. llama-cpp-python's server answers
a json_schema request with HTTP 500 and its request validation error; before, every agent
then failed after three retries."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlmodel import select

from orchestrator.agents.llm import refuses_schema
from orchestrator.engine import Engine
from storage.models import TraceEntry
from tests.conftest import TEST_FLOWS
from tests.fakes import LLAMA_CPP_PYTHON_500, OPENAI_STYLE_400, FakeOpenAI, Reply, point_baton_at, signal

REFUSALS = {
    "llama-cpp-python 500": LLAMA_CPP_PYTHON_500,
    "OpenAI-style 400": OPENAI_STYLE_400,
    "FastAPI validation 422": (422, "Input should be 'text' or 'json_object'", "invalid_request_error"),
    "llama.cpp server 500": (500, 'response_format type must be one of "text" or "json_object", '
                                  "but got: json_schema", "server_error"),
    "501": (501, "structured outputs are not implemented", "server_error"),
}


def signals(engine: Engine, ref: str) -> list[dict]:
    with engine.db.read() as s:
        return [e.data for e in s.exec(select(TraceEntry).where(
            TraceEntry.chain == ref, TraceEntry.kind.in_(("signal", "agent_failed"))))]  # type: ignore[attr-defined]


@pytest.mark.parametrize("server", REFUSALS)
def test_a_server_refusing_json_schema_in_any_way_gets_json_mode(
        make_engine: Callable[..., Engine], monkeypatch: pytest.MonkeyPatch, server: str) -> None:
    engine = make_engine(TEST_FLOWS)
    with FakeOpenAI(schema_refusal=REFUSALS[server]) as llm:
        point_baton_at(monkeypatch, llm)
        llm.script(Reply(signal(summary="From JSON mode")))
        first = engine.start_run("llm-retries", {"mode": "sloppy"}, "alice")
        second = engine.start_run("llm-retries", {"mode": "sloppy"}, "alice")
        answered = [(r.response_format, r.status) for r in llm.requests]
    assert engine.get_run(first.ref).status == engine.get_run(second.ref).status == "succeeded"
    status = REFUSALS[server][0]
    assert answered == [("json_schema", status), ("json_object", 200), ("json_object", 200)]
    (sloppy,) = [d for d in signals(engine, first.ref) if d["agent"] == "sloppy"]
    assert sloppy["summary"] == "From JSON mode" and sloppy["attempts"] == 1


def test_a_500_about_something_else_is_retried_not_taken_for_a_refusal(
        make_engine: Callable[..., Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(TEST_FLOWS)
    with FakeOpenAI() as llm:
        point_baton_at(monkeypatch, llm)
        llm.script(Reply(status=500, error="CUDA out of memory"), Reply(signal()))
        run = engine.start_run("llm-retries", {"mode": "flaky"}, "alice")
        answered = [(r.response_format, r.status) for r in llm.requests]
    assert engine.get_run(run.ref).status == "succeeded"
    assert answered == [("json_schema", 500), ("json_schema", 200)]


@pytest.mark.parametrize(("status", "message", "refused"), [
    (400, "anything at all", True),
    (500, LLAMA_CPP_PYTHON_500[1], True),
    (500, "Internal error while decoding", False),
    (503, "overloaded", False),
    (429, "response_format requests are rate limited", False),  # wait and retry instead
    (401, "json_schema needs a paid key", False),  # the key is the problem
])
def test_what_counts_as_a_refusal(status: int, message: str, refused: bool) -> None:
    assert refuses_schema(status, message) is refused


def test_a_forced_json_schema_refused_fails_at_once_saying_what_to_change(
        make_engine: Callable[..., Engine], monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "forced.yaml").write_text("""\
name: forced
agents:
  risk: {kind: llm, instructions: "You assess risk.", response_format: json_schema}
steps:
  - agent: risk
""")
    engine = make_engine(tmp_path)
    with FakeOpenAI(schema_refusal=LLAMA_CPP_PYTHON_500) as llm:
        point_baton_at(monkeypatch, llm)
        run = engine.start_run("forced", {}, "alice")
        calls = len(llm.requests)
    finished = engine.get_run(run.ref)
    assert finished.status == "failed" and calls == 1  # not retried three times
    assert "does not take JSON-schema output: set response_format: auto or json_object" \
        in (finished.reason or "")
