"""A flow file cannot make Baton import or run code outside BATON_PYTHON_MODULES (issue 8,
item 5): a python agent or action naming `os:system`, `subprocess:run`, `builtins:eval` or
an odd module path is refused when the file is loaded, with a message naming the problem
and nothing imported; and a run stored while a module was allowed cannot call it once the
allowlist no longer allows it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import select

from bot.commands import Commands, Invocation
from orchestrator.bootstrap import open_engine
from orchestrator.callables import CallableLoader
from orchestrator.clock import FakeClock
from orchestrator.engine import Engine
from orchestrator.errors import FlowError
from orchestrator.loader import compile_document
from orchestrator.yamlfile import parse_yaml
from storage.models import TraceEntry
from tests.conftest import make_settings
from tests.figures import Figures
from tests.reliability.conftest import FLOWS, MODULES, ORG, ORG_FILE

pytestmark = pytest.mark.reliability(
    item="5", promise="Flow files cannot import or run code except the dotted-path callables they "
                      "declare, and only from modules the configuration allows")

# (what a flow names, what the refusal must say)
CALLS = [
    ("os:system", "module 'os' is not allowed"),
    ("subprocess:run", "module 'subprocess' is not allowed"),
    ("builtins:eval", "module 'builtins' is not allowed"),
    ("builtins:__import__", "module 'builtins' is not allowed"),
    ("importlib:import_module", "module 'importlib' is not allowed"),
    ("this:s", "module 'this' is not allowed"),  # importing it would print: it must not be imported
    ("antigravity:geohash", "module 'antigravity' is not allowed"),  # would open a browser
    ("reliabilityagents_evil:echo", "module 'reliabilityagents_evil' is not allowed"),
    ("os.path:join", "module 'os.path' is not allowed"),
    ("reliabilityagents.os:system", "cannot import 'reliabilityagents.os'"),
    ("reliabilityagents:os", "'reliabilityagents:os' is not callable"),  # the module it imported
    ("reliabilityagents:_lock", "is not callable"),
    ("reliabilityagents:missing", "has no 'missing'"),
    (".reliabilityagents:echo", "expected module.path:function"),
    ("../reliabilityagents:echo", "expected module.path:function"),
    ("reliabilityagents/../os:system", "expected module.path:function"),
    ("/usr/lib/python3/os.py:system", "expected module.path:function"),
    ("os:system; rm -rf /", "expected module.path:function"),
    ("__import__('os').system('id')", "expected module.path:function"),
    ("reliabilityagents", "expected module.path:function"),
    ("reliabilityagents:echo:extra", "expected module.path:function"),
    ("reliabilityagents.echo", "expected module.path:function"),
    ("", "expected module.path:function"),
]


def agent_flow(call: str) -> str:
    return f"""
name: evil
agents:
  pwn: {{kind: python, call: {call!r}}}
steps:
  - agent: pwn
"""


def action_flow(call: str) -> str:
    return f"""
name: evil
steps:
  - action: {{id: pwn, call: {call!r}}}
"""


@pytest.mark.parametrize(("shape", "path"), [(agent_flow, "agents.pwn.call"),
                                              (action_flow, "steps[0].action.call")])
def test_a_flow_naming_code_outside_the_allowlist_is_refused_at_load(
        shape: Callable[[str], str], path: str, figures: Figures) -> None:
    loader = CallableLoader(MODULES, FLOWS)
    before = set(sys.modules)
    wrong = []
    for call, says in CALLS:
        figures.add("faults_injected")
        try:
            compile_document(parse_yaml(shape(call), "evil.yaml"), ORG, loader)
        except FlowError as exc:
            text = str(exc)
            if says not in text or "evil.yaml:" not in text or path not in text:
                wrong.append(f"{call!r}: {text}")
            else:
                figures.add("refusals")
            continue
        wrong.append(f"{call!r} was accepted")
    assert wrong == []
    assert {"this", "antigravity", "subprocess"} & (set(sys.modules) - before) == set()


def test_a_flow_file_with_such_a_call_cannot_be_run_from_slack(tmp_path: Path, database_url: str,
                                                              figures: Figures) -> None:
    (tmp_path / "evil.yaml").write_text(action_flow("os:system"))
    engine = open_engine(make_settings(database_url, tmp_path, BATON_ORG=ORG_FILE,
                                       BATON_PYTHON_MODULES=MODULES), clock=FakeClock())
    try:
        who = Invocation(user="alice", slack_user="U0ALICE01", channel="C0PAYMENTS1", source="command")
        reply, follow = Commands(engine).handle("run evil", who)
        figures.add("requests_sent")
        assert follow is None  # refused before anything was acknowledged as started
        shown = str(reply.blocks)
        assert "module 'os' is not allowed" in shown and "evil.yaml" in shown
        figures.add("refusals")
        with engine.db.read() as s:
            assert s.exec(select(TraceEntry)).all() == []
    finally:
        engine.shutdown()
        engine.db.dispose()


@pytest.fixture
def engines(make_engine: Callable[..., Engine]) -> Callable[[list[str]], Engine]:
    """Engines on one database, each allowing the given Python modules."""
    def open_with(modules: list[str]) -> Engine:
        return make_engine(FLOWS, settings_extra={"BATON_ORG": ORG_FILE,
                                                  "BATON_PYTHON_MODULES": modules})

    return open_with


def test_a_stored_run_cannot_call_a_module_the_allowlist_no_longer_allows(
        engines: Callable[[list[str]], Engine], ledger: Callable, figures: Figures) -> None:
    before = engines(MODULES)
    before.start_run("one-approval", {"amount": 100}, "alice")  # gate, then an action
    before.start_run("allowlist", {}, "alice")  # gate, then a python agent, then an action
    assert [before.get_run(r).status for r in ("R-1", "R-2")] == ["waiting", "waiting"]
    before.shutdown()

    after = engines(["examples"])  # the module is no longer allowed
    for ref in ("R-1", "R-2"):
        report = after.decide(ref, "bob", "approve")
        figures.add("requests_sent")
        assert report.status == "recorded", report.message
    for ref in ("R-1", "R-2"):
        run = after.get_run(ref)
        figures.add("faults_injected")
        assert run.status == "failed", (ref, run.status, run.reason)
        assert "module 'reliabilityagents' is not allowed" in (run.reason or ""), run.reason
        figures.add("refusals")
    assert ledger() == []  # the action never ran
