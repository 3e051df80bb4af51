"""An action that does not answer within its timeout: its outcome becomes unknown and a
person is asked, whichever engine runs it. The inline engine (the CLI) calls the action
on its own thread under a watchdog; a run worker (`baton serve`) on a call thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlmodel import select

from orchestrator.engine import Engine
from storage.models import Action, TraceEntry
from tests.conftest import TEST_FLOWS


@pytest.fixture
def held(test_engine: Engine) -> Iterator[Any]:
    """tests/flows/testagents.py's held action, let go at the end whatever happens."""
    import sys

    test_engine.callables.load("testagents:held_action")
    agents = sys.modules["testagents"]
    agents.held.clear()
    agents.holding.clear()
    yield agents
    agents.held.set()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Until `condition()` holds: a state to reach, not a time to meet (the limit is far)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"never reached: {what}"
        time.sleep(0.02)


def at_unknown_gate(engine: Engine, ref: str) -> bool:
    return engine.get_run(ref).status == "waiting" and \
        [g.key for g in engine.open_gates()] == ["pay-unknown"]


def check_unknown(engine: Engine, ref: str) -> None:
    with engine.db.read() as s:
        entries = list(s.exec(select(TraceEntry).where(TraceEntry.chain == ref)
                              .order_by(TraceEntry.seq)))
        actions = list(s.exec(select(Action)))
    kinds = [e.kind for e in entries]
    assert kinds.count("action_started") == 1 and "action_done" not in kinds
    unknown = next(e for e in entries if e.kind == "action_unknown")
    assert unknown.data["why"] == "it did not answer in time (timed out after 1s)"
    assert [(a.status, a.attempts) for a in actions] == [("unknown", 1)]
    assert engine.get_run(ref).status == "waiting"


def test_inline_a_hung_action_times_out_while_its_call_still_runs(
        test_engine: Engine, held: Any) -> None:
    started: list[Any] = []
    caller = threading.Thread(target=lambda: started.append(
        test_engine.start_run("action-hangs", {}, "alice")))
    caller.start()
    try:
        wait_for(held.holding.is_set, "the action was called")
        wait_for(lambda: at_unknown_gate(test_engine, "R-1"), "the run asks whether it ran")
        assert caller.is_alive()  # the call still holds its thread: Python cannot stop it
        check_unknown(test_engine, "R-1")
    finally:
        held.held.set()
        caller.join(60)
    assert not caller.is_alive() and started[0].ref == "R-1"
    check_unknown(test_engine, "R-1")  # the late answer changed nothing


def test_inline_an_action_that_answers_in_time_is_done(test_engine: Engine, held: Any) -> None:
    held.held.set()
    run = test_engine.start_run("action-hangs", {}, "alice")
    final = test_engine.get_run(run.ref)
    assert (final.status, final.outcome) == ("succeeded", "completed")


def test_a_run_worker_times_out_a_hung_action(make_engine: Callable[..., Engine],
                                               held: Any) -> None:
    engine = make_engine(TEST_FLOWS, background=True)
    run = engine.start_run("action-hangs", {}, "alice")
    try:
        wait_for(held.holding.is_set, "the action was called")
        wait_for(lambda: at_unknown_gate(engine, run.ref), "the run asks whether it ran")
        check_unknown(engine, run.ref)
    finally:
        held.held.set()
    wait_for(lambda: not engine.busy, "the worker is done")
    check_unknown(engine, run.ref)
