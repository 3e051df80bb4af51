"""A flow version stored before the upgrade is held to today's limits (issue 21, items 2 and
4): runs keep the version they started with, and that version is compiled again, with every
check, when a process needs it. A condition stored before costs were bounded is refused
there, never evaluated; a key variable naming one of Baton's secrets is refused there too."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import select

from orchestrator.engine import Engine
from orchestrator.errors import FlowError
from storage.models import FlowVersion
from tests.gates.test_condition_cost import HOSTILE

FLOW = """\
name: stored
title: {title}
inputs:
  amount: {{type: number, required: true}}
steps:
  - gate: {{id: first, approvers: "role:finance-approver"}}
  - gate: {{id: second, when: "inputs.amount > 10.0", approvers: "role:finance-approver"}}
"""


def stored_before_the_upgrade(engine: Engine, change: Callable[[dict], None]) -> None:
    """Rewrite the stored version as an older Baton, without today's checks, stored it."""
    with engine.db.write() as s:
        (version,) = s.exec(select(FlowVersion)).all()
        definition = copy.deepcopy(version.definition)
        change(definition)
        version.definition = definition
        s.add(version)


def test_a_costly_condition_in_a_stored_version_is_refused_not_evaluated(
        make_engine: Callable[..., Engine], tmp_path: Path) -> None:
    path = tmp_path / "stored.yaml"
    path.write_text(FLOW.format(title="v1"))
    run = make_engine(tmp_path).start_run("stored", {"amount": 20}, "alice")

    def hostile(definition: dict) -> None:
        definition["steps"][1]["gate"]["when"] = HOSTILE

    stored_before_the_upgrade(make_engine(tmp_path), hostile)
    path.write_text(FLOW.format(title="v2"))  # the file has moved on since
    later = make_engine(tmp_path)  # a process that has not seen the version yet
    with pytest.raises(FlowError, match="may take up to 324,361,202 steps"):
        later.decide(run.ref, "bob", "approve", reason="fine")
    assert later.get_run(run.ref).status == "waiting"  # nothing changed


def test_a_secret_key_variable_in_a_stored_version_is_refused(
        make_engine: Callable[..., Engine], tmp_path: Path) -> None:
    path = tmp_path / "stored.yaml"
    path.write_text(FLOW.format(title="v1"))
    run = make_engine(tmp_path).start_run("stored", {"amount": 20}, "alice")

    def exfiltrating(definition: dict) -> None:
        definition["agents"] = {"risk": {"kind": "llm", "instructions": "x",
                                         "api_key_env": "SLACK_BOT_TOKEN"}}
        definition["steps"].insert(1, {"agent": {"agent": "risk"}})

    stored_before_the_upgrade(make_engine(tmp_path), exfiltrating)
    path.write_text(FLOW.format(title="v2"))
    later = make_engine(tmp_path)
    with pytest.raises(FlowError, match="api_key_env 'SLACK_BOT_TOKEN' names one of Baton's own"):
        later.decide(run.ref, "bob", "approve", reason="fine")
