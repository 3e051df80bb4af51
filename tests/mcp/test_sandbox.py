"""The walkthrough of docs/mcp.md in `baton dev`: an MCP client of the sandbox's `/mcp` asks,
the sandbox page shows the run like any other (who asked, for which tool, what the agent
wrote shown as text, never as a mention), a person approves there as the page does, and
the agent gets the decision. What the agent wrote cannot ping anyone or form a link."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx

from orchestrator.loader import load_org
from sandbox import workspace_from_org
from sandbox.dev import DevSandbox, sandbox_app
from tests.cli.conftest import InProcess
from tests.conftest import EXAMPLE_FLOWS, make_settings
from tests.mcp.conftest import COMMAND, http_agent

HOSTILE = "<!channel> <!here> <@U0BOB0001> *urgent* <https://evil.example|click here> &amp;"


def test_an_mcp_request_in_the_sandbox_is_decided_on_its_page(tmp_path: Path,
                                                               database_url: str) -> None:
    settings = make_settings(database_url, BATON_MCP_WAIT=1)
    org = load_org(EXAMPLE_FLOWS / "org.yaml")
    with DevSandbox(settings, workspace_from_org(org, app=sandbox_app()), poll=0.05) as dev:
        assert dev.bot is not None and dev.mcp_url == f"{dev.bot.url}/mcp"
        made = InProcess(tmp_path, EXAMPLE_FLOWS, database_url)(
            "tokens", "create", "claude", "--as", "service:coding-agent", "--flows",
            "agent-action", "--json")
        assert made.returncode == 0, made.stderr
        token = json.loads(made.stdout)["token"]
        page = dev.url.rstrip("/")
        ws = dev.workspace

        def find_gate() -> object:
            return ws.wait_for(lambda w: next(
                (m for m in w.messages("C0PAYMENTS1") if m.thread_ts
                 and "gate `approve`" in json.dumps(m.blocks)), None), timeout=60)

        async def agent() -> dict[str, object]:
            async with http_agent(dev.bot.url, token) as claude:
                asked = await claude.call(
                    "request_approval", flow="agent-action", action="run_command",
                    arguments={**COMMAND, "service": HOSTILE},
                    summary=f"Mark invoice 7 paid {HOSTILE}")
                assert asked["state"] == "pending", asked.text
                gate = await anyio.to_thread.run_sync(find_gate)
                async with httpx.AsyncClient(base_url=page, trust_env=False, timeout=30,
                                             headers={"Origin": page}) as http:
                    shown = (await http.get("/_ui/state", params={"as": "grace",
                                                                 "in": "payments"})).json()
                    html = json.dumps(shown)
                    assert "R-1" in html and "Coding agent" in html and "run_command" in html
                    clicked = await http.post("/_ui/action", json={
                        "as": "grace", "kind": "button", "action_id": "gate.decide.approve",
                        "channel": gate.channel, "ts": gate.ts})  # type: ignore[attr-defined]
                    assert clicked.status_code == 200, clicked.text  # no reason asked
                for _ in range(60):
                    answer = await claude.call("wait_for_approval", run="R-1")
                    if answer["state"] != "pending":
                        return answer.data
                raise AssertionError("no decision")

        decided = anyio.run(agent)
        assert decided["state"] == "approved"
        assert decided["arguments"] == {**COMMAND, "service": HOSTILE}  # the agent's, as sent
        assert decided["decided_by"] == ["Grace Hall"]
        for message in ws.messages("C0PAYMENTS1"):
            raw = json.dumps({"text": message.text, "blocks": message.blocks})
            assert "<!channel>" not in raw and "<!here>" not in raw
            assert "<@U0BOB0001> *urgent*" not in raw and "<https://evil.example" not in raw
        assert any("&lt;!channel&gt;" in json.dumps(m.blocks) for m in ws.messages("C0PAYMENTS1"))
