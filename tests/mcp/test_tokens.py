"""`/mcp` and `baton mcp` act only with a valid API token: none, a wrong one, a revoked one
(also in the middle of a session) get an error that says why and how to fix it, and
nothing is written."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import COMMAND, Mcp, stdio_env

ASK = {"flow": "agent-action", "action": "run_command", "arguments": COMMAND,
       "summary": "Mark invoice 7 paid"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {},
    "clientInfo": {"name": "curl", "version": "1"}}}


def _mcp_error(exc: BaseException) -> MCPError:
    """The MCP error a client raised (the SDK's task groups wrap it in exception groups)."""
    if isinstance(exc, MCPError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            with contextlib.suppress(AssertionError):
                return _mcp_error(inner)
    raise AssertionError(f"not an MCP error: {exc!r}")


def _post(mcp: Mcp, token: str | None) -> httpx.Response:
    headers = {"Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{mcp.api.url}/mcp", json=INITIALIZE, headers=headers, timeout=30,
                      trust_env=False)


@pytest.mark.parametrize(("token", "why"), [
    (None, "send your Baton API token: Authorization: Bearer bt_"),
    ("sk-not-ours", "that is not a Baton API token (they start with bt_)"),
    ("bt_" + "0" * 40, "unknown API token"),
])
def test_mcp_without_a_valid_token_is_refused_with_the_reason(mcp: Mcp, token: str | None,
                                                              why: str) -> None:
    before = mcp.written()
    refused = _post(mcp, token)
    assert refused.status_code == 401
    body = refused.json()
    assert body["error"]["message"].startswith("Baton refused the token: ")
    assert why in body["error"]["message"]
    assert body["error"]["data"] == {"error": "invalid_token",
                                     "error_description": body["error"]["message"]
                                     .removeprefix("Baton refused the token: ")}
    assert refused.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert mcp.written() == before

    async def client() -> None:  # what the MCP SDK's own client shows its user
        with pytest.raises((MCPError, BaseExceptionGroup)) as failed:
            async with mcp.agent("http", token or ""):
                pass
        assert why in str(_mcp_error(failed.value))

    anyio.run(client)


def test_a_token_revoked_during_a_session_is_refused_at_its_next_call(mcp: Mcp) -> None:
    token = mcp.token()

    async def agent() -> None:
        async with mcp.agent("http", token) as claude, mcp.agent("stdio", token) as local:
            assert not (await claude.call("list_flows")).error
            assert not (await local.call("list_flows")).error
            revoked = await mcp.blocking(mcp.api.cli, "tokens", "revoke", "claude")
            assert revoked.returncode == 0, revoked.stderr
            before = await mcp.blocking(mcp.written)
            with pytest.raises((MCPError, BaseExceptionGroup)) as failed:
                await claude.call("request_approval", **ASK)
            assert "API token 'claude' was revoked" in str(_mcp_error(failed.value))
            answer = await local.call("request_approval", **ASK)
            assert answer.error
            assert answer.text.startswith("Refused: API token 'claude' was revoked.")
            assert "baton tokens create" in answer.text
            assert await mcp.blocking(mcp.written) == before

    anyio.run(agent)
    assert _post(mcp, token.token).status_code == 401


def test_baton_mcp_without_a_token_says_how_to_make_one(mcp: Mcp) -> None:
    env = stdio_env(mcp.api, "", remote=False)
    del env["BATON_TOKEN"]
    done = subprocess.run([sys.executable, "-c", "from bot.cli import main; main()", "mcp"],
                          env=env, cwd=mcp.tmp_path, capture_output=True, text=True,
                          input="", timeout=120)
    assert done.returncode == 2
    assert "BATON_TOKEN is not set" in done.stderr
    assert "baton tokens create NAME --as PRINCIPAL --flows FLOW" in done.stderr
    assert done.stdout == ""  # standard output is the protocol's


def test_baton_mcp_with_a_bad_token_says_so_and_every_tool_refuses(mcp: Mcp) -> None:
    env = stdio_env(mcp.api, "bt_" + "1" * 40, remote=False)

    async def agent() -> None:
        async with mcp.agent("stdio", "bt_" + "1" * 40) as claude:
            answer = await claude.call("list_flows")
            assert answer.error
            assert answer.text.startswith("Refused: unknown API token.")
    anyio.run(agent)
    assert "unknown API token; every tool will answer so" in (mcp.tmp_path / "baton-mcp.log").read_text()
    assert env["BATON_TOKEN"].startswith("bt_")
    assert json.dumps(env)  # the environment a client config holds is plain strings
