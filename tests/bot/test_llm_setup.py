"""A setup problem reaches the operator and the requester, never the approvers (issue 24,
item 4), through the surfaces they use: a signed `/baton run`, the run's thread, `/metrics`,
and what `baton serve --http` says as it starts. Before, with no OPENAI_API_KEY,
`vendor-payment-llm` ran, every agent failed, and a finance approver got "Agent compliance
failed" with a 30-minute escalation chain."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox import EmulatorServer, workspace_from_org
from storage.models import Gate, Run
from tests.bot.conftest import ALICE, BOB, CAROL, ORG, PAYMENTS, Baton
from tests.bot.processes import Replica, serve_env
from tests.conftest import EXAMPLE_FLOWS
from tests.fakes import FakeOpenAI, Reply, point_baton_at

RUN = "run vendor-payment-llm vendor=ACME amount=20000 note=chairs"


def metrics(baton: Baton) -> dict[tuple, float]:
    with httpx.Client(trust_env=False) as http:
        text = http.get(f"{baton.url}/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def rows(baton: Baton, model: type) -> list:
    from sqlmodel import select

    with baton.engine.db.read() as s:
        return list(s.exec(select(model)))


def test_no_key_is_told_to_the_requester_and_nothing_starts(
        make_baton: Callable[..., Baton], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    baton = make_baton()
    reply = baton.driver.slash_command(RUN, user=ALICE, channel=PAYMENTS)
    assert reply.status == 200
    baton.settle()
    told = baton.ephemerals(ALICE)[-1]  # after the acknowledgement ("Starting …")
    assert "vendor-payment-llm cannot run on this Baton server" in told.text
    assert "no API key for https://api.openai.com/v1: set OPENAI_API_KEY" in told.text
    assert rows(baton, Run) == [] and baton.channel() == []
    assert baton.dms(BOB) == baton.dms(CAROL) == []
    assert metrics(baton)[("baton_llm_setup_problems", (("flow", "vendor-payment-llm"),))] == 3
    assert metrics(baton)[("baton_llm_setup_problems", (("flow", "vendor-payment"),))] == 0


def test_a_model_that_refuses_the_key_stops_the_run_and_tells_the_requester(
        make_baton: Callable[..., Baton], monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI() as llm:
        point_baton_at(monkeypatch, llm)
        llm.script(Reply(status=401, error="Incorrect API key provided"))
        baton = make_baton()
        baton.driver.slash_command(RUN, user=ALICE, channel=PAYMENTS)
        baton.settle()
        figures = metrics(baton)
    (run,) = rows(baton, Run)
    assert (run.status, run.outcome) == ("failed", "setup")
    assert rows(baton, Gate) == []
    note = json.dumps(baton.thread(baton.run_card())[-1].blocks)
    assert "R-1 Failed" in note and "answered 401: Incorrect API key provided" in note
    assert "<@U0ALICE01>: your run could not reach its model. Ask the Baton operator" in note
    assert baton.dms(BOB) == baton.dms(CAROL) == []  # no approver is asked to decide around it
    assert "<@U0BOB0001>" not in json.dumps([m.blocks for m in baton.thread(baton.run_card())])
    assert figures[("baton_runs_failed_setup", (("window", "7d"),))] == 1


def test_serve_says_at_start_up_which_flows_cannot_run(
        emulator: EmulatorServer, database_url: str, tmp_path: Path) -> None:
    workspace = workspace_from_org(ORG)
    emulator.reset(workspace)
    env = serve_env(database_url, EXAMPLE_FLOWS, EXAMPLE_FLOWS / "org.yaml", emulator.api_url,
                    workspace, tmp_path / "ledger.jsonl", BATON_LOG_FORMAT="json")
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    replica = Replica(env, tmp_path, "serve")
    try:
        replica.wait_ready()
    finally:
        replica.stop()
    said = (tmp_path / "serve.log").read_text()
    assert ("baton serve: flow vendor-payment-llm cannot run: agent research: no API key for "
            "https://api.openai.com/v1: set OPENAI_API_KEY") in said
    logged = [json.loads(line) for line in said.splitlines() if line.startswith("{")]
    problems = [e for e in logged if e.get("event") == "llm_setup_problem"]
    assert sorted(e["agent"] for e in problems) == ["compliance", "research", "risk"]
    assert all(e["flow"] == "vendor-payment-llm" and e["level"] == "warning" for e in problems)
