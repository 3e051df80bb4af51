"""MCP end to end: the real `mcp` client library (a `ClientSession`) against Baton's MCP
server as a user runs it: `baton mcp` as a child process over stdio (on the local database,
or asking a `baton serve` with BATON_URL), or `/mcp` of the real Baton service over
streamable HTTP. People decide in the emulated Slack thread (signed requests, the harness
of tests/bot) or with `baton decide`."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from tests.api.conftest import Api, Token, make_api  # noqa: F401  (fixtures)
from tests.bot.conftest import PAYMENTS, emulator, make_baton  # noqa: F401  (fixtures)
from tests.conftest import EXAMPLE_FLOWS

GRACE, FRANK = "U0GRACE01", "U0FRANK01"  # on call (flows/org.yaml)
WAIT_S = "2"  # BATON_MCP_WAIT in these tests: request_approval answers `pending` quickly
TRANSPORTS = ("stdio", "stdio-remote", "http")
COMMAND = {"command": "psql billing -c 'UPDATE invoices SET state = 1 WHERE id = 7'",
           "environment": "production", "service": "billing-db"}


@dataclass
class Answer:
    """A tool's result as a model sees it (the text) and as an application does."""

    result: CallToolResult

    @property
    def error(self) -> bool:
        return bool(self.result.is_error)

    @property
    def text(self) -> str:
        return "\n".join(getattr(c, "text", "") for c in self.result.content)

    @property
    def data(self) -> dict[str, Any]:
        assert not self.error, self.text
        return dict(self.result.structured_content or {})

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


class Agent:
    """An MCP client session, as an agent's host holds it."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session
        self.progress: list[tuple[float, float | None, str | None]] = []

    async def call(self, tool: str, **arguments: Any) -> Answer:
        async def heard(progress: float, total: float | None, message: str | None) -> None:
            self.progress.append((progress, total, message))

        return Answer(await self.session.call_tool(tool, arguments, progress_callback=heard))

    async def decided(self, run: str, rounds: int = 60) -> Answer:
        """wait_for_approval again and again, as a model would, until the answer is not
        pending (each call waits at most the server's short wait in these tests)."""
        for _ in range(rounds):
            answer = await self.call("wait_for_approval", run=run)
            if answer.error or answer["state"] != "pending":
                return answer
        raise AssertionError(f"{run} still pending after {rounds} waits")


def stdio_env(api: Api, token: str, *, remote: bool, **extra: str) -> dict[str, str]:
    env = {"DATABASE_URL": api.cli.database_url, "BATON_FLOWS": str(EXAMPLE_FLOWS),
           "BATON_ORG": str(EXAMPLE_FLOWS / "org.yaml"), "BATON_TOKEN": token,
           "BATON_MCP_WAIT": WAIT_S, "BATON_LOG_LEVEL": "warning",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    if remote:
        env["BATON_URL"] = api.url
    return {**env, **extra}


@contextlib.asynccontextmanager
async def stdio_agent(env: dict[str, str], cwd: Path) -> AsyncIterator[Agent]:
    """`baton mcp` as a child process, the way Claude Code or Cursor starts it."""
    params = StdioServerParameters(command=sys.executable,
                                   args=["-c", "from bot.cli import main; main()", "mcp"],
                                   env=env, cwd=str(cwd))
    with (cwd / "baton-mcp.log").open("a") as log:
        async with stdio_client(params, errlog=log) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            yield Agent(session)


@contextlib.asynccontextmanager
async def http_agent(url: str, token: str | None) -> AsyncIterator[Agent]:
    """A client of `/mcp` with `Authorization: Bearer <token>`."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http, \
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield Agent(session)


@dataclass
class Mcp:
    """Baton with the API and `/mcp` (the in-process service), and agents of each transport."""

    api: Api
    tmp_path: Path

    def token(self, name: str = "claude", principal: str = "service:coding-agent",
              flows: str = "agent-action") -> Token:
        return self.api.token(name, principal, flows)

    def agent(self, transport: str, token: Token | str) -> contextlib.AbstractAsyncContextManager[Agent]:
        secret = token.token if isinstance(token, Token) else token
        if transport == "http":
            return http_agent(self.api.url, secret)
        return stdio_agent(stdio_env(self.api, secret, remote=transport == "stdio-remote"),
                           self.tmp_path)

    async def blocking(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A blocking step (a person clicking in Slack, the CLI) beside the async client."""
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    def gate(self, ref: str) -> Any:
        return self.api.gate_message(ref)

    def click(self, user: str, action: str, ref: str = "R-1") -> None:
        gate = self.gate(ref)
        self.api.baton.driver.click(user=user, action_id=action, channel=PAYMENTS, ts=gate.ts)

    def written(self) -> tuple[int, int]:
        """Runs and trace entries in the database: what a refusal must not change."""
        from sqlmodel import func, select

        from storage.models import Run, TraceEntry

        with self.api.baton.engine.db.read() as s:
            return (s.exec(select(func.count()).select_from(Run)).one(),
                    s.exec(select(func.count()).select_from(TraceEntry)).one())

    def trace(self, ref: str) -> list[dict[str, Any]]:
        from orchestrator.readers.export import export_run

        engine = self.api.baton.engine
        return list(export_run(engine.db, engine.get_run(ref))["entries"])


@pytest.fixture
def mcp(make_api: Callable[..., Api], tmp_path: Path) -> Mcp:  # noqa: F811
    return Mcp(make_api(BATON_MCP_WAIT=WAIT_S), tmp_path)


def shown(message: Any) -> str:
    return json.dumps({"text": message.text, "blocks": message.blocks})
