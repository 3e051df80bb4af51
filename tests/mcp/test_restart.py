"""`baton serve --http` killed (SIGKILL) while an MCP client waits for a decision, right
after a person's decision was committed: nothing is lost. After a restart (on the same
port, as a supervisor restarts it), `wait_for_approval` returns the approved arguments and
the report closes the run. Over `/mcp`, over `baton mcp` asking that server (BATON_URL),
and over `baton mcp` on the shared database."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from sandbox import EmulatorServer, workspace_from_org
from storage.engine import Database
from storage.migrate import ensure_schema
from tests.bot.conftest import ORG, PAYMENTS
from tests.bot.processes import Replica, eventually, free_port, serve_env
from tests.conftest import EXAMPLE_FLOWS
from tests.mcp.conftest import COMMAND, GRACE, Agent, http_agent, stdio_agent

WAIT = "20"  # a wait long enough to be under way when the server dies


@pytest.fixture
def env(emulator: EmulatorServer, database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    workspace = workspace_from_org(ORG)
    emulator.reset(workspace)
    db = Database(database_url)
    ensure_schema(db)
    db.dispose()
    yield serve_env(database_url, EXAMPLE_FLOWS, EXAMPLE_FLOWS / "org.yaml", emulator.api_url,
                    workspace, tmp_path / "ledger.jsonl", BATON_MCP_WAIT=WAIT)


def _ready(baton: Replica) -> None:
    eventually(lambda: baton.process.poll() is not None or _healthy(baton.url), timeout=120)
    assert baton.process.poll() is None, Path(baton.log.name).read_text()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _token(env: dict[str, str], tmp_path: Path) -> str:
    made = subprocess.run([sys.executable, "-c", "from bot.cli import main; main()", "tokens",
                           "create", "claude", "--as", "service:coding-agent", "--flows",
                           "agent-action", "--json"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    return str(json.loads(made.stdout)["token"])


def _agent(transport: str, env: dict[str, str], url: str, token: str, cwd: Path,
           ) -> contextlib.AbstractAsyncContextManager[Agent]:
    if transport == "http":
        return http_agent(url, token)
    mcp_env = {**env, "BATON_TOKEN": token, "PYTHONPATH": ":".join(sys.path)}
    if transport == "stdio-remote":
        mcp_env["BATON_URL"] = url
    return stdio_agent(mcp_env, cwd)


@contextlib.asynccontextmanager
async def _tolerant(transport: str, env: dict[str, str], url: str, token: str, cwd: Path,
                    broken: list[str]) -> AsyncIterator[Agent]:
    """A client session whose end may be a broken connection to a killed server (HTTP):
    what broke is noted, as a client's host would log it, and is not the test's failure."""
    try:
        async with _agent(transport, env, url, token, cwd) as agent:
            yield agent
    except (Exception, BaseExceptionGroup) as exc:
        broken.append(repr(exc))


@pytest.mark.parametrize("transport", ["http", "stdio-remote", "stdio"])
def test_a_wait_survives_baton_serve_killed_after_the_decision(
        env: dict[str, str], emulator: EmulatorServer, tmp_path: Path, transport: str) -> None:
    token = _token(env, tmp_path)
    port = free_port()
    first = Replica({**env, "BATON_CRASH_AT": "decision.committed"}, tmp_path, "first", port)
    second: Replica | None = None
    seen: list[str] = []  # what each wait answered meanwhile
    broken: list[str] = []

    def decide_then_restart() -> None:
        nonlocal second
        ws = emulator.workspace
        gate = eventually(lambda: next((m for m in ws.messages(PAYMENTS) if m.thread_ts
                                        and "gate `approve`" in json.dumps(m.blocks)), None))
        driver = emulator.driver(f"{first.url}/slack/events")
        driver.click(user=GRACE, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
        ws.wait_for(lambda w: w.modal_stack(GRACE), timeout=30)
        with contextlib.suppress(httpx.HTTPError):  # Baton may die before it answers Slack
            driver.submit_view(user=GRACE, values={"edit:command": COMMAND["command"] + " -1",
                                                    "reason": "Once, in a transaction"})
        eventually(lambda: first.process.poll() is not None, timeout=60)  # killed
        driver.close()
        first.stop()
        second = Replica(env, tmp_path, "second", port)
        _ready(second)

    async def wait_until_decided(agent: Agent, run: str) -> dict[str, Any] | None:
        for _ in range(30):
            try:
                answer = await agent.call("wait_for_approval", run=run)
            except (Exception, BaseExceptionGroup) as exc:
                seen.append(f"raised {exc!r}")
                return None
            if not answer.error and answer["state"] != "pending":
                return answer.data
            seen.append(answer.text)
            await anyio.sleep(0.5)  # a model's turn between two calls
        raise AssertionError(f"no decision: {seen}")

    async def scenario() -> dict[str, Any]:
        async with _tolerant(transport, env, first.url, token, tmp_path, broken) as claude:
            asked = await claude.call("request_approval", flow="agent-action",
                                      action="run_command", arguments=COMMAND,
                                      summary="Mark invoice 7 paid", idempotency_key="INV-7")
            assert asked["state"] == "approved" or asked["state"] == "pending", asked.text
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.to_thread.run_sync, decide_then_restart)
                decided = await wait_until_decided(claude, asked["run"])
            if decided is None:  # the session broke with the server: a client reconnects
                assert transport == "http", seen
            else:
                return decided
        async with _agent(transport, env, first.url, token, tmp_path) as again:
            decided = await wait_until_decided(again, "R-1")
            assert decided is not None, seen
            return decided

    try:
        _ready(first)
        decided = anyio.run(scenario)
        assert decided["state"] == "approved", decided
        assert decided["arguments"] == {**COMMAND, "command": COMMAND["command"] + " -1"}
        assert decided["decided_by"] == ["Grace Hall"]
        assert decided["reason"] == "Once, in a transaction"

        async def report() -> None:
            async with _agent(transport, env, first.url, token, tmp_path) as claude:
                done = await claude.call("report_result", run="R-1",
                                         approval=decided["approval"],
                                         arguments=decided["arguments"], result="UPDATE 1")
                assert done["recorded"] is True, done.text

        anyio.run(report)
        assert second is not None
        with httpx.Client(base_url=second.url, trust_env=False,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            run = eventually(lambda: (r := http.get("/api/v1/runs/R-1").json())["status"]
                             == "succeeded" and r, timeout=60)
        assert run["action"]["result"] == "UPDATE 1"
        assert [d["by"]["name"] for d in run["decisions"]] == ["Grace Hall"]  # one decision
    finally:
        first.stop()
        if second is not None:
            second.stop()
    # Meanwhile: over /mcp the call in flight ended with the connection (a client asks
    # again); `baton mcp` asking the dead server said so as a tool error, and on the shared
    # database it waited on across the restart.
    assert not broken, broken
    for text in seen:
        if transport == "http":
            assert text.startswith("raised MCPError"), seen
        elif "pending" not in text and "Not decided yet" not in text:
            assert transport == "stdio-remote", seen
            assert text.startswith(f"Unavailable: Baton at {first.url} did not answer"), seen
            assert "Nothing is lost: the run waits there; call again in a moment." in text
