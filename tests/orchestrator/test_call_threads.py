"""The threads agents and actions are called on: reused, bounded by a timeout, and in the
caller's context."""

import contextvars
import threading
import time

import pytest

from orchestrator.workers import CallThreads, CallTimedOut

WHO = contextvars.ContextVar("who", default="nobody")


def test_an_idle_thread_takes_the_next_call() -> None:
    calls = CallThreads("test-call")
    first = calls.call(threading.get_ident, 5)
    assert [calls.call(threading.get_ident, 5) for _ in range(20)] == [first] * 20
    assert first != threading.get_ident()


def test_a_call_that_hangs_times_out_and_the_next_call_gets_another_thread() -> None:
    calls = CallThreads("test-call")
    release = threading.Event()
    with pytest.raises(CallTimedOut):
        calls.call(release.wait, 0.05)
    try:
        assert calls.call(lambda: "answered", 5) == "answered"  # not stuck behind the first
    finally:
        release.set()


def test_a_timeout_raised_by_the_call_itself_is_not_taken_for_ours() -> None:
    def slow_socket() -> None:
        raise TimeoutError("the payment API did not answer")

    with pytest.raises(TimeoutError, match="payment API") as raised:
        CallThreads("test-call").call(slow_socket, 5)
    assert not isinstance(raised.value, CallTimedOut)


def test_a_call_runs_in_the_callers_context_and_its_changes_stay_there() -> None:
    calls = CallThreads("test-call")
    token = WHO.set("R-42")
    try:
        assert calls.call(WHO.get, 5) == "R-42"  # log lines inside carry the run
        calls.call(lambda: WHO.set("changed"), 5)
        assert WHO.get() == "R-42"
    finally:
        WHO.reset(token)
    assert calls.call(WHO.get, 5) == "nobody"  # nothing left behind on the reused thread


def test_at_most_keep_idle_threads_wait() -> None:
    calls = CallThreads("test-kept", keep=2)
    release = threading.Event()
    started = []

    def wait() -> None:
        started.append(1)
        release.wait(5)

    for _ in range(5):  # five calls at once: five threads
        with pytest.raises(CallTimedOut):
            calls.call(wait, 0.01)
    release.set()
    deadline = time.monotonic() + 5  # the three above `keep` end once their calls return
    while kept() > 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(started) == 5 and kept() == 2


def kept() -> int:
    return sum(t.name == "test-kept" for t in threading.enumerate())
