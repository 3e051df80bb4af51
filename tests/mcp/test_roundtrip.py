"""A coding agent asks through MCP, a person on call decides in the emulated Slack thread,
the agent runs exactly the approved command once and reports it: over stdio (`baton mcp`
on the local database, and asking `baton serve` with BATON_URL) and over streamable HTTP at
`/mcp`. Same tools, same answers, whatever the transport and backend."""

from __future__ import annotations

import anyio
import pytest

from tests.bot.processes import eventually
from tests.mcp.conftest import COMMAND, FRANK, GRACE, TRANSPORTS, Mcp

EDITED = "psql billing -c 'UPDATE invoices SET state = 1 WHERE id = 7' --single-transaction"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_approver_edits_the_command_and_the_agent_reports_it_once(mcp: Mcp,
                                                                     transport: str) -> None:
    token = mcp.token()

    async def agent() -> None:
        async with mcp.agent(transport, token) as claude:
            flows = await claude.call("list_flows")
            assert [f["flow"] for f in flows["flows"]] == ["agent-action"]
            listed = flows["flows"][0]
            assert listed["actions"] == ["run_command"]
            assert listed["arguments"]["environment"]["choices"] == ["production", "staging"]
            assert listed["arguments"]["command"]["required"] is True

            asked = await claude.call("request_approval", flow="agent-action",
                                      action="run_command", arguments=COMMAND,
                                      summary="Mark invoice 7 paid: the bank confirmed it")
            assert asked["state"] == "pending" and asked["run"] == "R-1"
            assert sorted(asked["can_decide"]) == ["Frank Li", "Grace Hall"]
            assert asked["arguments"] is None and asked["approval"] is None
            assert "do not perform run_command" in asked.text
            assert 'wait_for_approval(run="R-1")' in asked.text

            await mcp.blocking(mcp.click, GRACE, "gate.edit")
            await mcp.blocking(mcp.api.submit, GRACE, {"edit:command": EDITED,
                                                       "reason": "In one transaction, please"})
            approved = await claude.decided("R-1")
            assert approved["state"] == "approved", approved.text
            assert approved["arguments"] == {**COMMAND, "command": EDITED}
            assert approved["changed"] == {"command": {"requested": COMMAND["command"],
                                                       "approved": EDITED}}
            assert approved["decided_by"] == ["Grace Hall"]
            assert approved["reason"] == "In one transaction, please"
            assert approved["approval"].startswith("ap_")
            assert approved["idempotency_key"] == "R-1:run"
            assert "A person changed command: use the approved values" in approved.text

            reported = await claude.call("report_result", run="R-1",
                                         approval=approved["approval"],
                                         arguments=approved["arguments"],
                                         result={"stdout": "UPDATE 1"})
            assert reported["recorded"] is True
            assert reported["state"] in ("reported", "completed")

            again = await claude.call("report_result", run="R-1", approval=approved["approval"],
                                      arguments=approved["arguments"],
                                      result={"stdout": "UPDATE 1"})
            assert again.error
            assert "already reported" in again.text and "consumed once" in again.text

            run = await claude.call("get_run", run="R-1")
            assert run["status"] == "succeeded" and run["state"] == "completed"
            assert run["requested_by"] == "Coding agent"
            assert run["requested_arguments"] == COMMAND
            assert run["result"] == {"stdout": "UPDATE 1"}
            lines = "\n".join(run["highlights"])
            assert 'Grace Hall chose approve at gate "approve"' in lines
            assert "changed command from" in lines
            assert 'reported run_command done: {"stdout": "UPDATE 1"}' in lines
            assert "a report by Coding agent was refused" in lines

    anyio.run(agent)
    eventually(lambda: mcp.api.baton.engine.get_run("R-1").status == "succeeded", timeout=30)
    entries = mcp.trace("R-1")
    started = entries[0]
    assert started["actor"] == "service:coding-agent"
    assert started["data"]["origin"]["token"] == "claude"
    assert started["data"]["origin"]["tool"] == "run_command"
    done = next(e for e in entries if e["kind"] == "action_done")
    assert done["actor"] == "service:coding-agent"
    assert done["data"]["arguments"]["command"] == EDITED
    assert done["data"]["result"] == {"stdout": "UPDATE 1"}
    refused = [e for e in entries if e["kind"] == "action_report_refused"]
    assert len(refused) == 1 and "already reported" in refused[0]["data"]["why"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_rejection_carries_who_and_why(mcp: Mcp, transport: str) -> None:
    token = mcp.token()

    async def agent() -> None:
        async with mcp.agent(transport, token) as claude:
            asked = await claude.call("request_approval", flow="agent-action",
                                      action="run_command", arguments=COMMAND,
                                      summary="Mark invoice 7 paid")
            assert asked["state"] == "pending"
            await mcp.blocking(mcp.click, FRANK, "gate.decide.reject")
            await mcp.blocking(mcp.api.submit, FRANK,
                               {"reason": "Finance marks invoices paid, not us"})
            answer = await claude.decided(asked["run"])
            assert answer["state"] == "rejected"
            assert answer["decided_by"] == ["Frank Li"]
            assert answer["reason"] == "Finance marks invoices paid, not us"
            assert answer["arguments"] is None and answer["approval"] is None
            assert answer.text.startswith('Rejected by Frank Li. Their reason: "Finance marks '
                                          'invoices paid, not us". Do NOT perform run_command.')

    anyio.run(agent)
