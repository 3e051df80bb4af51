"""The framework adapters end to end: the real Baton service and approval API on loopback
against the Slack emulator (tests/api), the real `openai-agents` and `langgraph` packages
talking HTTP to the loopback OpenAI-compatible fake (tests/fakes/openai_server.py), and the
runnable examples in clients/python/examples as a user runs them."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.api.conftest import Api, api, make_api, test_api  # noqa: F401  (fixtures)
from tests.bot.conftest import CAROL, PAYMENTS, emulator, make_baton  # noqa: F401  (fixtures)
from tests.fakes.openai_server import FakeOpenAI

EXAMPLES = Path(__file__).resolve().parents[2] / "clients" / "python" / "examples"


def example(name: str) -> ModuleType:
    """A runnable example, imported from its file as `python examples/NAME.py` would run it."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Background:
    """A call running in a thread (the agent waiting for people), and what it gave."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.value: Any = None
        self.error: BaseException | None = None

        def go() -> None:
            try:
                self.value = fn(*args, **kwargs)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=go, daemon=True)
        self.thread.start()

    def result(self, timeout: float = 90.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the agent did not finish"
        if self.error is not None:
            raise self.error
        return self.value


def approve_with_edit(api: Api, ref: str, amount: str, reason: str, user: str = CAROL) -> None:
    """A finance approver lowers the amount in the gate's Edit modal, in the run's thread."""
    gate = api.gate_message(ref)
    api.baton.driver.click(user=user, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
    api.submit(user, {"edit:amount": amount, "reason": reason})


def reject(api: Api, ref: str, user: str, reason: str) -> None:
    gate = api.gate_message(ref)
    api.baton.driver.click(user=user, action_id="gate.decide.reject", channel=PAYMENTS, ts=gate.ts)
    api.submit(user, {"reason": reason})


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """The model server, configured the way a user points the examples at one."""
    with FakeOpenAI() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("OPENAI_MODEL", "fake-model")
        yield server
