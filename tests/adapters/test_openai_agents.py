"""An OpenAI Agents SDK agent whose pay_vendor tool needs approval: Baton decides it, the
agent's run resumes with the decision, and the tool runs once with what people approved."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
from baton_client import AsyncBaton, Rejected, TimedOut
from baton_client.openai_agents import BatonApprovals
from openai import AsyncOpenAI

from tests.adapters.conftest import (
    Background,
    Served,
    approve_with_edit,
    example,
    reject,
    run_example,
)
from tests.bot.conftest import BOB
from tests.fakes.openai_server import FakeOpenAI, Reply, call

set_tracing_disabled(True)  # the SDK's trace export goes to OpenAI; nothing leaves loopback
TASK = "Pay ACME's invoice INV-4471 for 20000"
PAY = call("pay_vendor", id="call_pay_1", vendor="ACME", amount=20000, invoice="INV-4471")


def _agent_pays(api: Served, token: str, bank: Any, **options: Any) -> Background:
    """The example agent, run as its `pay` function runs it, in a thread of its own."""
    pay_vendor = example("openai_agents_pay_vendor")
    return Background(asyncio.run, pay_vendor.pay(TASK, bank, baton=AsyncBaton(api.url, token),
                                                  **options))


def test_an_approver_edits_the_amount_and_the_tool_pays_exactly_that_once(api: Served,
                                                                        llm: FakeOpenAI) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    llm.script(Reply(tool_calls=[PAY]), Reply("Paid ACME 18,000 for INV-4471."), match="INV-4471")
    bank = example("openai_agents_pay_vendor").Bank()

    agent = _agent_pays(api, token, bank)
    approve_with_edit(api, "R-1", "18000", "Only the first milestone is due")
    assert agent.result() == "Paid ACME 18,000 for INV-4471."

    assert bank.payments == [{"payment": "PAY-INV-4471", "vendor": "ACME", "amount": 18000.0}]
    # The model asked once, was stopped, and after the approval got the tool's real result.
    first, second = llm.requests
    assert [t["function"]["name"] for t in first.body["tools"]] == ["pay_vendor"]
    assert ast.literal_eval(second.tool_results()["call_pay_1"]) == bank.payments[0]

    with api.client(token) as client:
        run = client.wait("R-1", timeout=30)
        assert run.state == "completed" and run.status == "succeeded"
        entries = client.trace("R-1")["entries"]
    started = entries[0]
    assert started["kind"] == "run_started" and started["actor"] == "service:billing-agent"
    assert started["data"]["origin"]["tool"] == "pay_vendor"
    assert started["data"]["inputs"] == {"vendor": "ACME", "amount": 20000.0, "invoice": "INV-4471"}
    decision = next(e for e in entries if e["kind"] == "decision")
    assert decision["actor"] == "carol" and decision["data"]["reason"] == "Only the first milestone is due"
    assert decision["data"]["edits"] == {"amount": {"from": 20000.0, "to": 18000.0}}
    done = [e for e in entries if e["kind"] == "action_done"]
    assert len(done) == 1 and done[0]["data"]["result"] == bank.payments[0]
    assert done[0]["data"]["arguments"]["amount"] == 18000.0


def test_a_rejection_reaches_the_model_with_who_and_why(api: Served, llm: FakeOpenAI) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    llm.script(Reply(tool_calls=[PAY]), Reply("Bob Ortiz refused it: no PO."), match="INV-4471")
    bank = example("openai_agents_pay_vendor").Bank()

    agent = _agent_pays(api, token, bank)
    reject(api, "R-1", BOB, "No PO for this vendor")
    assert agent.result() == "Bob Ortiz refused it: no PO."

    assert bank.payments == []
    told = llm.requests[1].tool_results()["call_pay_1"]
    assert "rejected in Baton by Bob Ortiz" in told and "No PO for this vendor" in told
    with api.client(token) as client:
        run = client.get("R-1")
    assert run.status == "rejected" and run.action is None


def test_nobody_deciding_fails_closed_and_the_model_is_told(test_api: Served, llm: FakeOpenAI) -> None:
    """agent-quick's escalation gives people a second, then rejects."""
    api = test_api
    token = api.token("ops-bot", "service:billing-agent", "agent-quick")
    ran: list[str] = []
    llm.script(Reply(tool_calls=[call("run_command", id="call_cmd", command="rm -rf /var/cache")]),
               Reply("Nobody approved it."), match="cache")

    async def agent_run() -> str:
        async with AsyncBaton(api.url, token) as baton:
            approvals = BatonApprovals(baton, timeout=60)

            @approvals.tool(flow="agent-quick")
            def run_command(command: str) -> str:
                """Run a shell command."""
                ran.append(command)
                return "ok"

            agent = Agent(name="Ops", instructions="Clear the cache.", tools=[run_command],
                          model=OpenAIChatCompletionsModel(
                              model="fake-model", openai_client=AsyncOpenAI()))
            return str((await approvals.run(agent, "Clear the cache")).final_output)

    assert asyncio.run(agent_run()) == "Nobody approved it."
    assert ran == []
    told = llm.requests[1].tool_results()["call_cmd"]
    assert "nobody decided in time" in told and "escalation" in told
    with api.client(token) as client:
        run = client.get("R-1")
    assert run.status == "rejected" and run.state == "timed_out"


def _billing(approvals: BatonApprovals, paid: list[float]) -> Agent[Any]:
    @approvals.tool(flow="vendor-payment-api")
    async def pay_vendor(vendor: str, amount: int, invoice: str) -> str:
        """Pay a vendor."""
        paid.append(amount)
        return f"paid {amount}"

    return Agent(name="Billing", instructions="Pay.", tools=[pay_vendor],
                 model=OpenAIChatCompletionsModel(model="fake-model", openai_client=AsyncOpenAI()))


def test_an_approval_given_in_the_sdk_alone_does_not_run_the_tool(api: Served, llm: FakeOpenAI) -> None:
    """Code that approves the interruption on the RunState itself, without Baton: the tool
    asks Baton when it is invoked, and runs only once people approve there."""
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    llm.script(Reply(tool_calls=[PAY]), Reply("Done."), match="INV-4471")
    paid: list[float] = []

    async def agent_run() -> str:
        async with AsyncBaton(api.url, token) as baton:
            approvals = BatonApprovals(baton, timeout=90)
            agent = _billing(approvals, paid)
            result = await Runner.run(agent, TASK)
            state = result.to_state()
            for item in result.interruptions:
                state.approve(item, always_approve=True)  # not Baton's decision
            return str((await Runner.run(agent, state)).final_output)

    agent = Background(asyncio.run, agent_run())
    approve_with_edit(api, "R-1", "15000", "Half now")
    assert agent.result() == "Done."
    assert paid == [15000]  # an int parameter gets an int


def test_on_denied_raise_gives_the_caller_rejected(api: Served, llm: FakeOpenAI) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    llm.script(Reply(tool_calls=[PAY]), Reply("unreachable"), match="INV-4471")
    paid: list[float] = []

    async def agent_run() -> Any:
        async with AsyncBaton(api.url, token) as baton:
            approvals = BatonApprovals(baton, timeout=90, on_denied="raise")
            return await approvals.run(_billing(approvals, paid), TASK)

    agent = Background(asyncio.run, agent_run())
    reject(api, "R-1", BOB, "Duplicate invoice")
    with pytest.raises(Rejected) as rejected:
        agent.result()
    assert rejected.value.decider == "Bob Ortiz" and rejected.value.reason == "Duplicate invoice"
    assert paid == [] and len(llm.requests) == 1


def test_invalid_arguments_are_refused_by_baton_and_the_model_told_why(api: Served,
                                                                     llm: FakeOpenAI) -> None:
    """A model that sends an amount Baton's flow refuses (above its `min`) is told the field,
    and nothing is started."""
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    bad = call("pay_vendor", id="call_bad", vendor="ACME", amount=-5, invoice="INV-1")
    llm.script(Reply(tool_calls=[bad]), Reply("I could not."), match="INV-4471")
    paid: list[float] = []

    async def agent_run() -> str:
        async with AsyncBaton(api.url, token) as baton:
            approvals = BatonApprovals(baton, timeout=30)
            return str((await approvals.run(_billing(approvals, paid), TASK)).final_output)

    assert asyncio.run(agent_run()) == "I could not."
    told = llm.requests[1].tool_results()["call_bad"]
    assert told.startswith("Baton refused pay_vendor") and "inputs.amount" in told
    assert paid == []
    with api.client(token) as client, pytest.raises(Exception, match="404"):
        client.get("R-1")


def test_a_caller_that_gives_up_cancels_the_run(api: Served, llm: FakeOpenAI) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    llm.script(Reply(tool_calls=[PAY]), Reply("Nobody answered."), match="INV-4471")
    paid: list[float] = []

    async def agent_run() -> str:
        async with AsyncBaton(api.url, token) as baton:
            approvals = BatonApprovals(baton, timeout=0.5)
            return str((await approvals.run(_billing(approvals, paid), TASK)).final_output)

    assert asyncio.run(agent_run()) == "Nobody answered."
    assert "nobody decided in time" in llm.requests[1].tool_results()["call_pay_1"]
    with api.client(token) as client:
        run = client.get("R-1")
    assert run.state == "cancelled" and paid == []


def test_a_caller_that_keeps_the_run_gets_timed_out_and_the_run_stays_open(
        api: Served, llm: FakeOpenAI) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    llm.script(Reply(tool_calls=[PAY]), Reply("unreachable"), match="INV-4471")
    paid: list[float] = []

    async def agent_run() -> Any:
        async with AsyncBaton(api.url, token) as baton:
            approvals = BatonApprovals(baton, timeout=0.5, on_timeout="keep")
            return await approvals.run(_billing(approvals, paid), TASK)

    with pytest.raises(TimedOut, match="stays open"):
        asyncio.run(agent_run())
    with api.client(token) as client:
        assert client.get("R-1").state == "pending" and paid == []


def test_two_calls_in_one_turn_are_asked_together_and_each_paid_as_approved(
        api: Served, llm: FakeOpenAI) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    llm.script(Reply(tool_calls=[
        call("pay_vendor", id="c1", vendor="ACME", amount=20000, invoice="INV-1"),
        call("pay_vendor", id="c2", vendor="Globex", amount=30000, invoice="INV-2")]),
        Reply("Paid both."), match="INV-4471")
    bank = example("openai_agents_pay_vendor").Bank()

    agent = _agent_pays(api, token, bank)
    api.gate_message("R-2")  # both asked before anyone decides
    approve_with_edit(api, "R-2", "2500", "the first part")
    approve_with_edit(api, "R-1", "1500", "the first part")
    assert agent.result() == "Paid both."
    assert sorted(p["amount"] for p in bank.payments) == [1500.0, 2500.0]
    with api.client(token) as client:
        for ref in ("R-1", "R-2"):
            run = client.wait(ref, timeout=30)
            arguments = run.action["arguments"]
            assert run.state == "completed"
            assert {"payment": f"PAY-{arguments['invoice']}", "vendor": arguments["vendor"],
                    "amount": arguments["amount"]} in bank.payments


def test_the_example_runs_as_its_docstring_says(api: Served, llm: FakeOpenAI,
                                                tmp_path: Path) -> None:
    """`python clients/python/examples/openai_agents_pay_vendor.py TASK`, with BATON_URL,
    BATON_TOKEN and OPENAI_BASE_URL set: it waits for people, pays what they approved."""
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    llm.script(Reply(tool_calls=[PAY]), Reply("Paid ACME 17,500 for INV-4471."), match="INV-4471")
    agent = run_example("openai_agents_pay_vendor", api, token, llm, TASK, tmp_path)
    try:
        approve_with_edit(api, "R-1", "17500", "Net of the deposit")
        out, err = agent.communicate(timeout=120)
    finally:
        agent.kill()
    assert agent.returncode == 0, err
    assert out.splitlines() == [
        "Paid ACME 17,500 for INV-4471.",
        "payments made: [{'payment': 'PAY-INV-4471', 'vendor': 'ACME', 'amount': 17500.0}]"]
    with api.client(token) as client:
        run = client.wait("R-1", timeout=30)
    assert run.state == "completed" and run.arguments["amount"] == 17500.0
