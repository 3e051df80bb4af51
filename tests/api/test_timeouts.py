"""No decision in time ends as the flow says (fail closed by default); a caller that gives up
cancels its run; a result that never comes makes the outcome unknown, for a person."""

from __future__ import annotations

from typing import Any

import pytest
from baton_client import Conflict, TimedOut, require_approval

from tests.api.conftest import Api
from tests.bot.conftest import PAYMENTS
from tests.bot.processes import eventually

GRACE = "U0GRACE01"


def test_nobody_deciding_fails_closed_and_the_agent_gets_timed_out(test_api: Api) -> None:
    api = test_api
    token = api.token("ops-bot", "service:billing-agent", "agent-quick")
    ran: list[str] = []
    with api.client(token) as client:
        @require_approval(flow="agent-quick", timeout=60, client=client)
        def run_command(command: str) -> None:
            ran.append(command)

        with pytest.raises(TimedOut) as timed_out:
            run_command("rm -rf /var/cache/app")
        run = client.get(timed_out.value.run)
    assert ran == []
    assert run.status == "rejected" and run.state == "timed_out"
    assert "escalation" in (timed_out.value.reason or "")
    assert run["gates"][0]["closed_by"] == "baton"


def test_a_caller_that_gives_up_cancels_its_run(api: Api) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    with api.client(token) as client:
        @require_approval(flow="vendor-payment-api", timeout=0.5, client=client)
        def pay_vendor(vendor: str, amount: float) -> None:
            raise AssertionError("must not run")

        with pytest.raises(TimedOut, match="cancelled"):
            pay_vendor("ACME", 20000)
        run = client.get("R-1")
        assert run.status == "stopped" and run.state == "cancelled" and run.action is None
        assert "the caller gave up" in (run.reason or "")
        gate = api.gate_message("R-1")
        assert "Closed without a decision" in str(
            api.baton.slack.workspace.wait_for(
                lambda ws: "Closed" in str(ws.message(PAYMENTS, gate.ts).blocks)
                and ws.message(PAYMENTS, gate.ts), timeout=10).blocks)


def test_keep_leaves_the_run_open_for_a_retry_with_the_same_key(api: Api) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    paid: list[Any] = []
    with api.client(token) as client:
        def pay(timeout: float) -> Any:
            @require_approval(flow="vendor-payment-api", timeout=timeout, on_timeout="keep",
                              client=client, key=lambda vendor, amount, invoice: invoice)
            def pay_vendor(vendor: str, amount: float, invoice: str) -> str:
                paid.append(amount)
                return "paid"

            return pay_vendor("ACME", 20000, "INV-9")

        with pytest.raises(TimedOut, match="stays open"):
            pay(0.3)
        assert client.get("R-1").status == "waiting"
        decided = api.cli("decide", "R-1", "approve", "--as", "carol", "--reason", "ok")
        assert decided.returncode == 0, decided.stderr
        assert pay(30) == "paid" and paid == [20000]


def test_a_result_that_never_comes_makes_the_outcome_unknown(test_api: Api) -> None:
    api = test_api
    token = api.token("ops-bot", "service:billing-agent", "agent-report")
    with api.client(token) as client:
        run = client.start("agent-report", {"command": "deploy"})
        decided = api.cli("decide", "R-1", "approve", "--as", "grace")
        assert decided.returncode == 0, decided.stderr
        run = client.wait(run, timeout=30)
        assert run.approved
        client.report(run, status="started")

        def unknown() -> bool:
            return client.get(run).action["status"] == "unknown"

        eventually(unknown, timeout=30)
        with pytest.raises(Conflict, match="declared unknown"):
            client.report(run, result={"exit": 0})
        entries = client.trace(run)["entries"]
    kinds = [e["kind"] for e in entries]
    assert "action_unknown" in kinds and kinds[-1] == "action_report_refused"
    assert entries[-1]["data"]["result"] == {"exit": 0}  # kept for the person who settles it
    (gate,) = [g for g in api.baton.engine.open_gates()]
    assert gate.key == "run-unknown" and set(gate.approvers) == {"grace", "frank"}
