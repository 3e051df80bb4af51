"""`baton serve --http` killed (SIGKILL) between a decision and its callback: after a
restart the callback is delivered, and the receiver, de-duplicating on the event id, sees
each event once."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from baton_client import Baton as Client

from sandbox import EmulatorServer, workspace_from_org
from storage.engine import Database
from storage.migrate import ensure_schema
from tests.api.conftest import Receiver
from tests.bot.conftest import CAROL, ORG, PAYMENTS
from tests.bot.processes import Replica, eventually, serve_env
from tests.conftest import EXAMPLE_FLOWS


@pytest.fixture
def env(emulator: EmulatorServer, database_url: str, tmp_path: Path, receiver: Receiver
        ) -> Iterator[dict[str, str]]:
    workspace = workspace_from_org(ORG)
    emulator.reset(workspace)
    db = Database(database_url)
    ensure_schema(db)
    db.dispose()
    yield serve_env(database_url, EXAMPLE_FLOWS, EXAMPLE_FLOWS / "org.yaml", emulator.api_url,
                    workspace, tmp_path / "ledger.jsonl",
                    BATON_CALLBACK_HOSTS=f"http://{receiver.url.removeprefix('http://')}")


def _ready(baton: Replica) -> None:
    """`Replica.wait_ready`, with the patience a machine busy with other suites needs."""
    eventually(lambda: baton.process.poll() is not None or _healthy(baton.url), timeout=120)
    assert baton.process.poll() is None, Path(baton.log.name).read_text()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _token(env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    made = subprocess.run([sys.executable, "-c", "from bot.cli import main; main()", "tokens",
                           "create", "billing-bot", "--as", "service:billing-agent", "--flows",
                           "vendor-payment-api", "--json"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    return dict(json.loads(made.stdout))


@pytest.mark.parametrize("crash_at", ["callback.sent", "decision.committed"])
def test_a_callback_survives_baton_killed_after_the_decision(
        env: dict[str, str], emulator: EmulatorServer, receiver: Receiver, tmp_path: Path,
        crash_at: str) -> None:
    token = _token(env, tmp_path)
    baton = Replica({**env, "BATON_CRASH_AT": crash_at}, tmp_path, "first")
    try:
        _ready(baton)
        with Client(baton.url, token["token"]) as client:
            client.start("vendor-payment-api", {"vendor": "ACME", "amount": 20000},
                         callback_url=f"{receiver.url}/hook", idempotency_key="INV-1")
        ws = emulator.workspace
        gate = eventually(lambda: next((m for m in ws.messages(PAYMENTS) if m.thread_ts
                                        and "gate `approve`" in json.dumps(m.blocks)), None))
        driver = emulator.driver(f"{baton.url}/slack/events")
        driver.click(user=CAROL, action_id="gate.decide.approve", channel=PAYMENTS, ts=gate.ts)
        ws.wait_for(lambda w: w.modal_stack(CAROL), timeout=30)
        with contextlib.suppress(httpx.HTTPError):  # Baton may die before it answers Slack
            driver.submit_view(user=CAROL, values={"reason": "Invoice checked"})
        eventually(lambda: baton.process.poll() is not None, timeout=60)  # killed at crash_at
        driver.close()
    finally:
        baton.stop()

    again = Replica(env, tmp_path, "second")
    try:
        _ready(again)
        eventually(lambda: {p["json"]["type"] for p in receiver.received()}
                   >= {"gate.decided", "action.due"}, timeout=90)
        with Client(again.url, token["token"]) as client:
            run = client.wait("R-1", timeout=30)
            assert run.approved
            client.report(run, result={"paid": 20000})
        eventually(lambda: "run.finished" in {p["json"]["type"] for p in receiver.received()},
                   timeout=60)
    finally:
        again.stop()

    posts = receiver.received()
    seen: dict[str, dict[str, Any]] = {}
    for post in posts:  # what a receiver does: keep the first of each event id
        seen.setdefault(post["json"]["id"], post["json"])
    assert sorted(event["type"] for event in seen.values()) == sorted(
        ["gate.decided", "action.due", "run.finished"])
    if crash_at == "callback.sent":  # the first POST was answered, then Baton died
        assert len(posts) == 4
        assert posts[0]["json"]["id"] == posts[1]["json"]["id"]
