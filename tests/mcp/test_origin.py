"""Every surface says which door a run was asked through: the REST API, or MCP over stdio
(`baton mcp`) or streamable HTTP (`/mcp`), with the token's name either way. The door is
the server's to say (which of its code paths made the run), never the agent's: a field,
an argument or a header claiming another door changes nothing."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest
from baton_client import InvalidRequest

from tests.mcp.conftest import COMMAND, Mcp, http_agent, shown

SUMMARY = "Mark invoice 7 paid: the bank confirmed it"
# What each transport records: `baton mcp` with BATON_URL is a client of the REST API (the
# server it asks cannot tell it from any other), so its runs say so.
DOORS = {"stdio": ("mcp-stdio", "MCP (stdio)"), "http": ("mcp-http", "MCP (HTTP)"),
         "stdio-remote": ("api", "the API")}


def _started(mcp: Mcp, ref: str = "R-1") -> dict:
    return next(e for e in mcp.trace(ref) if e["kind"] == "run_started")


@pytest.mark.parametrize("transport", list(DOORS))
def test_a_run_asked_through_mcp_says_so_everywhere(mcp: Mcp, transport: str) -> None:
    door, words = DOORS[transport]
    token = mcp.token("claude")

    async def agent() -> dict:
        async with mcp.agent(transport, token) as claude:
            asked = await claude.call("request_approval", flow="agent-action",
                                      action="run_command", arguments=COMMAND, summary=SUMMARY)
            assert asked["run"] == "R-1"
            return (await claude.call("get_run", run="R-1")).data

    run = anyio.run(agent)
    # The MCP tool's own answer.
    assert run["asked_through"] == door
    assert any(f"through {words} with token \"claude\"" in line for line in run["highlights"])

    # The Slack run card, as the emulator holds it.
    card = shown(mcp.api.baton.run_card("R-1"))
    if door == "api":
        assert "API token `claude`" in card and "through MCP" not in card
    else:
        assert f"through {words}" in card and "token `claude`" in card
        assert "API token" not in card

    # The hash-chained trace entry, and the API's view of the run.
    origin = _started(mcp)["data"]["origin"]
    assert origin["through"] == door and origin["token"] == "claude" and origin["kind"] == "api"
    with mcp.api.client(token) as client:
        assert client.get("R-1").data["through"] == door

    # `baton trace` and `baton status`, as a person runs them.
    traced = mcp.api.cli("trace", "R-1")
    assert traced.returncode == 0, traced.stderr
    assert f"by Coding agent through {words} (token claude)" in traced.stdout
    status = mcp.api.cli("status", "R-1")
    assert status.returncode == 0, status.stderr
    assert f"asked through {words} with token claude" in status.stdout
    verified = mcp.api.cli("trace", "verify", "R-1")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_run_asked_through_the_rest_api_still_says_api(mcp: Mcp) -> None:
    token = mcp.token("billing-bot")
    with mcp.api.client(token) as client:
        started = client.start("agent-action", COMMAND, tool="run_command", summary=SUMMARY)
        assert started.data["through"] == "api"
    card = shown(mcp.api.baton.run_card("R-1"))
    assert "API token `billing-bot`" in card and "MCP" not in card
    assert _started(mcp)["data"]["origin"]["through"] == "api"
    assert "by Coding agent through the API (token billing-bot)" in mcp.api.cli(
        "trace", "R-1").stdout
    assert "asked through the API with token billing-bot" in mcp.api.cli(
        "status", "R-1").stdout


def test_a_rest_caller_cannot_claim_mcp(mcp: Mcp) -> None:
    token = mcp.token("billing-bot")
    runs = f"{mcp.api.url}/api/v1/runs"
    auth = {"Authorization": f"Bearer {token.token}"}
    before = mcp.written()
    # The door in the body, at the top or inside the inputs: refused, nothing written.
    for body in ({"through": "mcp-stdio"}, {"origin": {"through": "mcp-http", "kind": "api"}}):
        answer = httpx.post(runs, headers=auth, json={
            "flow": "agent-action", "inputs": COMMAND, "tool": "run_command", **body})
        assert answer.status_code == 422, answer.text
        assert "through" in answer.text or "origin" in answer.text
    with mcp.api.client(token) as client, pytest.raises(InvalidRequest):
        client.start("agent-action", {**COMMAND, "through": "mcp-stdio"}, tool="run_command")
    assert mcp.written() == before
    # MCP's headers on a REST request: still the API.
    answer = httpx.post(runs, json={"flow": "agent-action", "inputs": COMMAND,
                                     "tool": "run_command"},
                        headers={**auth, "X-Baton-Through": "mcp-stdio",
                                 "Mcp-Protocol-Version": "2025-06-18",
                                 "Mcp-Session-Id": "forged", "User-Agent": "Claude Desktop (MCP)",
                                 "Accept": "application/json, text/event-stream"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["through"] == "api"
    assert _started(mcp)["data"]["origin"]["through"] == "api"
    assert "API token `billing-bot`" in shown(mcp.api.baton.run_card("R-1"))


def test_an_mcp_client_cannot_claim_the_api(mcp: Mcp) -> None:
    token = mcp.token("claude")

    async def agent() -> None:
        headers = {"X-Baton-Through": "api", "User-Agent": "billing-service"}
        async with http_agent(mcp.api.url, token.token) as claude:
            for extra in ({"through": "api"}, {"origin": {"through": "api"}}):
                refused = await claude.call("request_approval", flow="agent-action",
                                            action="run_command", arguments=COMMAND,
                                            summary=SUMMARY, **extra)
                assert refused.error, refused.text
            refused = await claude.call("request_approval", flow="agent-action",
                                        action="run_command",
                                        arguments={**COMMAND, "through": "api"}, summary=SUMMARY)
            assert refused.error, refused.text
            assert mcp.written() == (0, 0)
        await _with_headers(mcp, token.token, headers)

    anyio.run(agent)
    origin = _started(mcp)["data"]["origin"]
    assert origin["through"] == "mcp-http"
    card = shown(mcp.api.baton.run_card("R-1"))
    assert "through MCP (HTTP)" in card and "API token" not in card


async def _with_headers(mcp: Mcp, token: str, headers: dict[str, str]) -> None:
    """request_approval over `/mcp` with headers claiming the API."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}", **headers},
                                  timeout=httpx2.Timeout(30, read=120)) as http, \
            streamable_http_client(f"{mcp.api.url}/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool("request_approval", {
            "flow": "agent-action", "action": "run_command", "arguments": COMMAND,
            "summary": SUMMARY})
        assert not result.is_error, json.dumps(result.model_dump(mode="json"))[:2000]
