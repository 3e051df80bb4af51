"""What an agent gets wrong comes back as a tool error (never a protocol error, never a
crash of the server) whose message says what to fix, and nothing is written: an unknown
flow, a flow the token may not start, bad arguments, and another token's run. A token has
no tool that decides: only people do."""

from __future__ import annotations

import anyio
import pytest

from bot.api.limits import MAX_DEPTH
from tests.mcp.conftest import COMMAND, TRANSPORTS, Agent, Mcp

ASK = {"flow": "agent-action", "action": "run_command", "summary": "Mark invoice 7 paid"}


async def _refused(agent: Agent, mcp: Mcp, tool: str, **arguments: object) -> str:
    """The tool's error text, after checking that the call wrote nothing."""
    before = await mcp.blocking(mcp.written)
    answer = await agent.call(tool, **arguments)
    assert answer.error, f"{tool} answered instead of refusing: {answer.text}"
    assert answer.result.structured_content is None
    assert await mcp.blocking(mcp.written) == before, f"{tool} wrote something: {answer.text}"
    return answer.text


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_requests_are_tool_errors_that_say_what_to_fix(mcp: Mcp, transport: str) -> None:
    token = mcp.token(flows="agent-action,vendor-payment")

    async def agent() -> None:
        async with mcp.agent(transport, token) as claude:
            tools = await claude.session.list_tools()
            assert sorted(t.name for t in tools.tools) == [
                "get_run", "list_flows", "report_result", "request_approval",
                "wait_for_approval"]  # nothing that approves, rejects or claims

            text = await _refused(claude, mcp, "request_approval", **{**ASK, "flow": "agent-actoin"},
                                  arguments=COMMAND)
            assert "unknown flow 'agent-actoin'" in text and "Did you mean 'agent-action'?" in text
            assert "may start: agent-action, vendor-payment" in text
            assert "release-review" not in text and "/flows" not in text  # nothing of others'
            assert "Nothing was written" in text

            text = await _refused(claude, mcp, "request_approval", **{**ASK, "flow": "release-review"},
                                  arguments=COMMAND)
            assert "may not start 'release-review'" in text and "list_flows" in text

            # vendor-payment is the token's, but only people (and the billing agent) start it
            text = await _refused(claude, mcp, "request_approval", flow="vendor-payment",
                                  action="pay", arguments={"vendor": "ACME", "amount": 5},
                                  summary="Pay ACME")
            assert "Refused:" in text

            text = await _refused(claude, mcp, "request_approval", **ASK,
                                  arguments={**COMMAND, "environment": "prod", "force": True})
            assert "arguments.environment:" in text and "production, staging" in text
            assert "arguments.force: unknown input 'force'" in text
            text = await _refused(claude, mcp, "request_approval", **{**ASK, "action": "deploy"},
                                  arguments={"command": "ls"})
            assert "arguments.environment:" in text and "arguments.service:" in text
            assert "action: agent-action approves run_command, not 'deploy'" in text

            text = await _refused(claude, mcp, "request_approval", flow="agent-action",
                                  action="run_command", arguments=COMMAND)
            assert text.startswith("Invalid arguments for request_approval: summary: Field "
                                   "required")
            text = await _refused(claude, mcp, "request_approval", **ASK, arguments="ls -la",
                                  urgency="high")
            assert "arguments: Input should be a valid dictionary" in text
            assert "urgency: not an argument of request_approval (it takes flow, action, " \
                   "arguments, summary, idempotency_key)" in text
            deep: object = "deep"
            for _ in range(MAX_DEPTH + 2):
                deep = [deep]
            text = await _refused(claude, mcp, "request_approval", **ASK,
                                  arguments={**COMMAND, "command": deep})
            assert "nested more than" in text

            text = await _refused(claude, mcp, "wait_for_approval", run="R-99")
            assert "no run R-99 started with token 'claude'" in text
            text = await _refused(claude, mcp, "get_run", run="banana")
            assert "run id" in text
            text = await _refused(claude, mcp, "launch_missiles")
            assert "Unknown tool 'launch_missiles'" in text
            assert "request_approval" in text

    anyio.run(agent)


def test_a_run_of_another_token_is_not_found_and_nothing_is_written(mcp: Mcp) -> None:
    """Over /mcp, whose tokens are checked per request, and over stdio."""
    claude = mcp.token("claude")
    cursor = mcp.token("cursor")  # the same principal, another token: still not its run

    async def agents() -> None:
        async with mcp.agent("http", claude) as first:
            asked = await first.call("request_approval", **ASK, arguments=COMMAND)
            assert asked["state"] == "pending"
        for transport in ("http", "stdio"):
            async with mcp.agent(transport, cursor) as second:
                for tool, extra in (("wait_for_approval", {}), ("get_run", {}),
                                    ("report_result", {"approval": "ap_guess",
                                                       "arguments": COMMAND,
                                                       "result": "done"})):
                    text = await _refused(second, mcp, tool, run=asked["run"], **extra)
                    assert f"no run {asked['run']} started with token 'cursor'" in text
                    assert "Coding agent" not in text and "psql" not in text

    anyio.run(agents)
