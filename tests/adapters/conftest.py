"""The framework adapters end to end, the way a user runs them: `baton serve --http` as a
process (engine, timers, outbox, the bolt app and the approval API) against the Slack
emulator, people deciding through signed Slack requests to its `/slack/events`, tokens
made with `baton tokens create`; the real `openai-agents` and `langgraph` packages talking
HTTP to the loopback OpenAI-compatible fake (tests/fakes/openai_server.py); and the
runnable examples in clients/python/examples, imported from their files or run as
processes."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from baton_client import Baton as Client

from sandbox import EmulatorServer, workspace_from_org
from storage.engine import Database
from storage.migrate import ensure_schema
from tests.bot.conftest import CAROL, ORG, PAYMENTS, emulator  # noqa: F401  (fixtures)
from tests.bot.processes import Replica, eventually, serve_env
from tests.cli.conftest import InProcess
from tests.conftest import EXAMPLE_FLOWS, TEST_FLOWS
from tests.fakes.openai_server import FakeOpenAI

EXAMPLES = Path(__file__).resolve().parents[2] / "clients" / "python" / "examples"


class Served:
    """`baton serve --http` running as a process over `flows`, and Slack's side of it."""

    def __init__(self, emulator: EmulatorServer, database_url: str, tmp_path: Path,  # noqa: F811
                 flows: Path) -> None:
        workspace = workspace_from_org(ORG)
        emulator.reset(workspace)
        db = Database(database_url)
        ensure_schema(db)
        db.dispose()
        self.emulator = emulator
        self.cli = InProcess(tmp_path, flows, database_url)
        self.env = serve_env(database_url, flows, EXAMPLE_FLOWS / "org.yaml", emulator.api_url,
                             workspace, tmp_path / "ledger.jsonl")
        self.process = Replica(self.env, tmp_path, "baton-serve")
        self.url = self.process.url
        # A machine busy with other suites may take a while to import and migrate.
        eventually(lambda: self.process.process.poll() is not None or self._healthy(), 120)
        assert self.process.process.poll() is None, Path(self.process.log.name).read_text()
        self.driver = emulator.driver(f"{self.url}/slack/events", timeout=30)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.driver.close()
        self.process.stop()

    def log(self) -> str:
        return Path(self.process.log.name).read_text()

    def token(self, name: str, principal: str, flows: str) -> str:
        """`baton tokens create NAME --as PRINCIPAL --flows FLOWS`: the token, shown once."""
        made = self.cli("tokens", "create", name, "--as", principal, "--flows", flows, "--json")
        assert made.returncode == 0, made.stderr
        return str(json.loads(made.stdout)["token"])

    def client(self, token: str) -> Client:
        return Client(self.url, token)

    def gate_message(self, ref: str = "R-1", timeout: float = 60.0) -> Any:
        """The run's gate request in its card's thread, once Slack has it."""
        def find(ws: Any) -> Any:
            card = next((m for m in ws.messages(PAYMENTS, include_replies=False)
                         if m.text.startswith(f"{ref} ")), None)
            if card is None:
                return None
            return next((m for m in ws.replies(card.channel, card.ts)[1:]
                         if any("gate `" in json.dumps(b) for b in m.blocks)), None)

        return self.emulator.workspace.wait_for(find, timeout=timeout)

    def click(self, user: str, action_id: str, ref: str) -> None:
        """`user` presses a button of the run's gate request (a signed Slack request)."""
        gate = self.gate_message(ref)
        self.driver.click(user=user, action_id=action_id, channel=PAYMENTS, ts=gate.ts)

    def submit(self, user: str, values: dict[str, Any]) -> Any:
        """Submit the modal `user` has open, once the bot has opened it."""
        self.emulator.workspace.wait_for(lambda ws: ws.modal_stack(user), timeout=60)
        return self.driver.submit_view(user=user, values=values)


def approve_with_edit(served: Served, ref: str, amount: str, reason: str, user: str = CAROL) -> None:
    """A finance approver lowers the amount in the gate's Edit modal, in the run's thread."""
    served.click(user, "gate.edit", ref)
    served.submit(user, {"edit:amount": amount, "reason": reason})


def reject(served: Served, ref: str, user: str, reason: str) -> None:
    """An approver rejects in the run's thread, saying why."""
    served.click(user, "gate.decide.reject", ref)
    served.submit(user, {"reason": reason})


@pytest.fixture
def make_served(emulator: EmulatorServer, database_url: str, tmp_path: Path,  # noqa: F811
                ) -> Iterator[Callable[[Path], Served]]:
    started: list[Served] = []

    def build(flows: Path) -> Served:
        served = Served(emulator, database_url, tmp_path, flows)
        started.append(served)
        return served

    yield build
    for served in started:
        served.stop()


@pytest.fixture
def api(make_served: Callable[[Path], Served]) -> Served:
    """Baton serving the example flows (vendor-payment-api: a finance approver above 1,000)."""
    return make_served(EXAMPLE_FLOWS)


@pytest.fixture
def test_api(make_served: Callable[[Path], Served]) -> Served:
    """Baton serving tests/flows (agent-quick: an escalation that fails closed in a second)."""
    return make_served(TEST_FLOWS)


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """The model server, configured the way a user points the examples at one."""
    with FakeOpenAI() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("OPENAI_MODEL", "fake-model")
        yield server


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


def run_example(name: str, served: Served, token: str, llm: FakeOpenAI, task: str,
                tmp_path: Path) -> subprocess.Popen[str]:
    """`python clients/python/examples/NAME.py TASK` as its docstring says to run it: Baton
    and the model named by the environment only."""
    import os

    env = {**{k: v for k, v in os.environ.items()
              if not k.startswith(("BATON_", "DATABASE_", "SLACK_", "OPENAI_"))},
           "BATON_URL": served.url, "BATON_TOKEN": token, "OPENAI_BASE_URL": llm.base_url,
           "OPENAI_API_KEY": "test-key", "OPENAI_MODEL": "fake-model"}
    return subprocess.Popen([sys.executable, str(EXAMPLES / f"{name}.py"), task], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


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
