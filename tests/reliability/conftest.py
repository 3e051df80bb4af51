"""Reliability and security tests (issue 8): forged and replayed requests, Socket Mode
redeliveries, hostile text, fuzzed input, concurrent deciders.

They reuse the end-to-end harness of tests/bot (the real BatonService over loopback HTTP
against the Slack emulator). Each test keeps a few figures (requests sent, faults injected,
refusals, decisions lost ...) through the `figures` fixture of tests/figures.py, so the
reliability report quotes the last run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import func
from sqlmodel import select

from orchestrator.clock import Clock
from orchestrator.loader import load_org
from sandbox.blockkit import block_errors, view_errors
from storage.models import Action, Decision, Event, Gate, Run, SlackInbox, SlackOutbox, TraceEntry
from tests.bot.conftest import Baton, emulator, make_baton  # noqa: F401 (fixtures, by import)

FLOWS = Path(__file__).resolve().parent / "flows"
ORG_FILE = FLOWS / "org.yaml"
ORG = load_org(ORG_FILE)
MODULES = ["reliabilityagents"]
# Who is who in tests/reliability/flows/org.yaml: five approvers, five who may not decide.
ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GRACE, HENRY, IVAN, JUDY = (
    "U0ALICE01", "U0BOB0001", "U0CAROL01", "U0DAVE001", "U0ERIN001", "U0FRANK01", "U0GRACE01",
    "U0HENRY01", "U0IVAN001", "U0JUDY001")
APPROVERS = [BOB, CAROL, DAVE, ERIN, FRANK]
EVERYONE = [ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GRACE, HENRY, IVAN, JUDY]
PAYMENTS = "C0PAYMENTS1"

# Hypothesis settings for every fuzz test here: reproducible in CI (the same examples each
# run, no example database), no per-example deadline (a request goes through the real
# service), and each test sets its own max_examples to stay within the time budget.
FUZZ = settings(derandomize=True, database=None, print_blob=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

# The Web API methods (and response URLs) by which the bot changes what people see.
SLACK_WRITES = ("chat.", "views.", "files.", "response_url", "upload_url", "conversations.open")
TABLES = {"run": Run, "gate": Gate, "decision": Decision, "action": Action,
          "trace_entry": TraceEntry, "event": Event, "slack_outbox": SlackOutbox,
          "slack_inbox": SlackInbox}




# -- Baton over tests/reliability/flows -----------------------------------------------------
@pytest.fixture
def make_reliable(make_baton: Callable[..., Baton]) -> Callable[..., Baton]:  # noqa: F811
    """tests/bot's `make_baton` over this folder's flows, org and agent module."""
    def build(clock: Clock | None = None, modules: list[str] | None = None) -> Baton:
        return make_baton(FLOWS, clock=clock, org=ORG_FILE,
                          BATON_PYTHON_MODULES=MODULES if modules is None else modules)

    return build


@pytest.fixture
def reliable(make_reliable: Callable[..., Baton]) -> Baton:
    return make_reliable()


# -- what changed ------------------------------------------------------------------------
def footprint(baton: Baton) -> dict[str, int]:
    """Rows in every table a request could change, and the Slack calls that show something."""
    with baton.engine.db.read() as s:
        counts = {name: int(s.exec(select(func.count()).select_from(model)).one())
                  for name, model in TABLES.items()}
    counts["slack_writes"] = sum(1 for c in baton.slack.calls if c.method.startswith(SLACK_WRITES))
    counts["ephemerals"] = len(baton.slack.workspace.ephemerals())
    return counts


def surface_problems(baton: Baton, *, refused: bool = True) -> list[str]:
    """Every message, modal and home view the bot sent, checked against Slack's Block Kit
    rules (the emulator refuses invalid ones too; this names them); with `refused`, every
    call Slack refused too."""
    problems: list[str] = []
    for call in baton.slack.calls:
        args = call.args
        if isinstance(args.get("blocks"), list):
            problems += [f"{call.method}: {p}" for p in block_errors(args["blocks"])]
        if isinstance(args.get("view"), dict):
            problems += [f"{call.method}: {p}" for p in view_errors(args["view"])]
        if refused and call.method.startswith(SLACK_WRITES) and isinstance(call.response, dict) \
                and call.status == 200 and not call.ok:
            problems.append(f"{call.method} refused: {call.response}")
    return problems


def sent_surfaces(baton: Baton) -> list[tuple[str, Any]]:
    """(method, what was sent) for every message or view the bot sent."""
    found: list[tuple[str, Any]] = []
    for call in baton.slack.calls:
        if "blocks" in call.args or "text" in call.args:
            found.append((call.method, {"text": call.args.get("text"),
                                        "blocks": call.args.get("blocks")}))
        if isinstance(call.args.get("view"), dict):
            found.append((call.method, call.args["view"]))
    return found


def text_objects(node: Any) -> Iterator[dict[str, Any]]:
    """Every Block Kit text object (plain_text or mrkdwn) inside `node`."""
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and isinstance(node.get("text"), str):
            yield node
        for value in node.values():
            yield from text_objects(value)
    elif isinstance(node, list):
        for item in node:
            yield from text_objects(item)


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or predicate}")
