"""A LangGraph agent whose pay_vendor tool stops the graph with `interrupt()` while Baton
asks people; the graph resumes with the decision and the tool runs once, as approved."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from baton_client import Baton, Rejected, TimedOut
from baton_client.langgraph import BatonApprovals
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command

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

TASK = "Pay ACME's invoice INV-4471 for 20000"
PAY = call("pay_vendor", id="call_pay_1", vendor="ACME", amount=20000, invoice="INV-4471")


def _graph_pays(api: Served, token: str, bank: Any, **options: Any) -> Background:
    """The example agent, run as its `pay` function runs it, in a thread of its own."""
    pay_vendor = example("langgraph_pay_vendor")
    return Background(pay_vendor.pay, TASK, bank, baton=Baton(api.url, token), **options)


def test_an_approver_edits_the_amount_and_the_tool_pays_exactly_that_once(api: Served,
                                                                        llm: FakeOpenAI) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    llm.script(Reply(tool_calls=[PAY]), Reply("Paid ACME 18,000 for INV-4471."), match="INV-4471")
    bank = example("langgraph_pay_vendor").Bank()

    agent = _graph_pays(api, token, bank)
    approve_with_edit(api, "R-1", "18000", "Only the first milestone is due")
    assert agent.result() == "Paid ACME 18,000 for INV-4471."

    assert bank.payments == [{"payment": "PAY-INV-4471", "vendor": "ACME", "amount": 18000.0}]
    first, second = llm.requests
    assert [t["function"]["name"] for t in first.body["tools"]] == ["pay_vendor"]
    assert second.tool_results() == {
        "call_pay_1": "Paid 18000 to ACME for INV-4471: payment PAY-INV-4471"}

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
    assert len(done) == 1
    assert done[0]["data"]["result"] == "Paid 18000 to ACME for INV-4471: payment PAY-INV-4471"
    assert done[0]["data"]["arguments"]["amount"] == 18000.0


def test_a_rejection_reaches_the_model_as_the_tools_error(api: Served, llm: FakeOpenAI) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    llm.script(Reply(tool_calls=[PAY]), Reply("Bob Ortiz refused it: no PO."), match="INV-4471")
    bank = example("langgraph_pay_vendor").Bank()

    agent = _graph_pays(api, token, bank)
    reject(api, "R-1", BOB, "No PO for this vendor")
    assert agent.result() == "Bob Ortiz refused it: no PO."

    assert bank.payments == []
    told = llm.requests[1].tool_results()["call_pay_1"]
    assert "rejected in Baton by Bob Ortiz" in told and "No PO for this vendor" in told
    tool_message = next(m for m in llm.requests[1].messages if m["role"] == "tool")
    assert tool_message["content"] == told
    with api.client(token) as client:
        run = client.get("R-1")
    assert run.status == "rejected" and run.action is None


def _ops_graph(approvals: BatonApprovals, ran: list[str], checkpointer: Any,
              flow: str = "agent-quick") -> Any:
    @approvals.tool(flow=flow)
    @tool
    def run_command(command: str) -> str:
        """Run a shell command."""
        ran.append(command)
        return "ok"

    model = ChatOpenAI(model="fake-model", use_responses_api=False).bind_tools([run_command])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([run_command]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=checkpointer)


def _checkpointer(path: Path) -> SqliteSaver:
    return SqliteSaver(sqlite3.connect(path, check_same_thread=False))


def test_nobody_deciding_fails_closed_and_the_model_is_told(test_api: Served, llm: FakeOpenAI,
                                                            tmp_path: Path) -> None:
    """agent-quick's escalation gives people a second, then rejects."""
    api = test_api
    token = api.token("ops-bot", "service:billing-agent", "agent-quick")
    llm.script(Reply(tool_calls=[call("run_command", id="call_cmd", command="rm -rf /var/cache")]),
               Reply("Nobody approved it."), match="cache")
    ran: list[str] = []
    with Baton(api.url, token) as baton:
        approvals = BatonApprovals(baton, timeout=60)
        graph = _ops_graph(approvals, ran, _checkpointer(tmp_path / "graph.sqlite"))
        state = approvals.invoke(graph, {"messages": [HumanMessage("Clear the cache")]},
                                 {"configurable": {"thread_id": "ops-1"}})
    assert state["messages"][-1].content == "Nobody approved it."
    assert ran == []
    told = llm.requests[1].tool_results()["call_cmd"]
    assert "nobody decided in time" in told and "escalation" in told
    with api.client(token) as client:
        run = client.get("R-1")
    assert run.status == "rejected" and run.state == "timed_out"


def test_a_graph_waiting_for_people_is_resumed_by_another_process(test_api: Served, llm: FakeOpenAI,
                                                                  tmp_path: Path) -> None:
    """The agent stops waiting (on_timeout="keep"); the graph stays at its interrupt in the
    checkpoint database and the Baton run stays open. A person approves; a new process (new
    graph, new client, the same checkpoints) resumes it: the same Baton run, no second
    question, and the command runs once. (agent-command: no answer in it is timed, so the
    approval may take as long as this machine takes to start the CLI.)"""
    api = test_api
    token = api.token("ops-bot", "service:billing-agent", "agent-command")
    llm.script(Reply(tool_calls=[call("run_command", id="call_cmd", command="deploy v2")]),
               Reply("Deployed."), match="deploy")
    config = {"configurable": {"thread_id": "ops-2"}}
    ran: list[str] = []
    with Baton(api.url, token) as baton:
        approvals = BatonApprovals(baton, timeout=0, on_timeout="keep")
        graph = _ops_graph(approvals, ran, _checkpointer(tmp_path / "graph.sqlite"),
                            "agent-command")
        with pytest.raises(TimedOut, match="stays open"):
            approvals.invoke(graph, {"messages": [HumanMessage("deploy v2 please")]}, config)
        (pending,) = graph.get_state(config).interrupts
        assert pending.value["baton"]["inputs"] == {"command": "deploy v2"}

    decided = api.cli("decide", "R-1", "approve", "--as", "grace", "--reason", "go")
    assert decided.returncode == 0, decided.stderr

    with Baton(api.url, token) as baton:
        approvals = BatonApprovals(baton, timeout=30)
        graph = _ops_graph(approvals, ran, _checkpointer(tmp_path / "graph.sqlite"),
                            "agent-command")
        state = approvals.resume(graph, config)
        assert state["messages"][-1].content == "Deployed."
        assert ran == ["deploy v2"]
        with pytest.raises(Exception, match="404"):
            baton.get("R-2")  # nobody was asked twice
        assert baton.wait("R-1", timeout=30).state == "completed"


def test_on_denied_raise_stops_the_graph_with_rejected(api: Served, llm: FakeOpenAI,
                                                       tmp_path: Path) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    llm.script(Reply(tool_calls=[PAY]), Reply("unreachable"), match="INV-4471")
    bank = example("langgraph_pay_vendor").Bank()

    def run_graph() -> Any:
        with Baton(api.url, token) as baton:
            approvals = BatonApprovals(baton, timeout=90, on_denied="raise")
            graph = example("langgraph_pay_vendor").billing_graph(
                approvals, ChatOpenAI(model="fake-model", use_responses_api=False), bank,
                _checkpointer(tmp_path / "graph.sqlite"))
            return approvals.invoke(graph, {"messages": [HumanMessage(TASK)]},
                                    {"configurable": {"thread_id": "pay-1"}})

    agent = Background(run_graph)
    reject(api, "R-1", BOB, "Duplicate invoice")
    with pytest.raises(Rejected) as rejected:
        agent.result()
    assert rejected.value.decider == "Bob Ortiz" and rejected.value.reason == "Duplicate invoice"
    assert bank.payments == [] and len(llm.requests) == 1


def test_a_resume_naming_another_calls_approval_does_not_run_the_tool(api: Served, llm: FakeOpenAI,
                                                                      tmp_path: Path) -> None:
    """Code that answers the tool's interrupt itself, naming a run approved for another call
    (a smaller payment), changes nothing: the tool reads its own run from Baton, still
    waiting, and stops the graph again. It pays once people approve that run."""
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    llm.script(Reply(tool_calls=[PAY]), Reply("Paid."), match="INV-4471")
    bank = example("langgraph_pay_vendor").Bank()
    with Baton(api.url, token) as baton:
        small = baton.start("vendor-payment-api", {"vendor": "ACME", "amount": 10,
                                                   "invoice": "INV-4471"}, tool="pay_vendor")
        assert baton.wait(small, timeout=30).approved  # no gate below 1,000
        approvals = BatonApprovals(baton, timeout=60)
        graph = example("langgraph_pay_vendor").billing_graph(
            approvals, ChatOpenAI(model="fake-model", use_responses_api=False), bank,
            _checkpointer(tmp_path / "graph.sqlite"))
        config = {"configurable": {"thread_id": "pay-2"}}
        graph.invoke({"messages": [HumanMessage(TASK)]}, config)
        (pending,) = graph.get_state(config).interrupts
        assert pending.value["baton"]["run"] == "R-2"
        graph.invoke(Command(resume={pending.id: {"run": small.id}}), config)
        (again,) = graph.get_state(config).interrupts
        assert again.value["baton"]["run"] == "R-2" and bank.payments == []

        approve_with_edit(api, "R-2", "19000", "Less the credit note")
        state = approvals.resume(graph, config)
    assert state["messages"][-1].content == "Paid."
    assert bank.payments == [{"payment": "PAY-INV-4471", "vendor": "ACME", "amount": 19000.0}]
    assert len(llm.requests) == 2  # the model was not asked again while the graph waited


def test_invalid_arguments_are_refused_by_baton_and_the_model_told_why(api: Served,
                                                                     llm: FakeOpenAI) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    bad = call("pay_vendor", id="call_bad", vendor="ACME", amount=-5, invoice="INV-1")
    llm.script(Reply(tool_calls=[bad]), Reply("I could not."), match="INV-4471")
    bank = example("langgraph_pay_vendor").Bank()
    agent = _graph_pays(api, token, bank)
    assert agent.result() == "I could not."
    told = llm.requests[1].tool_results()["call_bad"]
    assert told.startswith("Baton refused pay_vendor") and "inputs.amount" in told
    assert bank.payments == []


def _paid_as_approved(api: Served, token: str, payments: list[dict[str, Any]]) -> None:
    """Each payment is its own run's approved amount: no decision crossed to another call."""
    with api.client(token) as client:
        for ref in ("R-1", "R-2"):
            run = client.wait(ref, timeout=30)
            arguments = run.action["arguments"]
            assert run.state == "completed"
            assert {"payment": f"PAY-{arguments['invoice']}", "vendor": arguments["vendor"],
                    "amount": arguments["amount"]} in payments


def test_two_calls_in_one_step_are_asked_together_and_each_paid_as_approved(
        api: Served, llm: FakeOpenAI) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    llm.script(Reply(tool_calls=[
        call("pay_vendor", id="c1", vendor="ACME", amount=20000, invoice="INV-1"),
        call("pay_vendor", id="c2", vendor="Globex", amount=30000, invoice="INV-2")]),
        Reply("Paid both."), match="INV-4471")
    bank = example("langgraph_pay_vendor").Bank()

    agent = _graph_pays(api, token, bank)
    api.gate_message("R-2")  # both asked before anyone decides
    approve_with_edit(api, "R-2", "2500", "Globex: the first part")
    approve_with_edit(api, "R-1", "1500", "ACME: the first part")
    assert agent.result() == "Paid both."
    assert sorted(p["amount"] for p in bank.payments) == [1500.0, 2500.0]
    _paid_as_approved(api, token, bank.payments)
    assert set(llm.requests[1].tool_results()) == {"c1", "c2"}


def test_the_example_runs_as_its_docstring_says(api: Served, llm: FakeOpenAI,
                                                tmp_path: Path) -> None:
    """`python clients/python/examples/langgraph_pay_vendor.py TASK`, with BATON_URL,
    BATON_TOKEN and OPENAI_BASE_URL set: it waits for people, pays what they approved."""
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    llm.script(Reply(tool_calls=[PAY]), Reply("Paid ACME 17,500 for INV-4471."), match="INV-4471")
    agent = run_example("langgraph_pay_vendor", api, token, llm, TASK, tmp_path)
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
