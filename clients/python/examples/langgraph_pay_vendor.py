"""A LangGraph agent pays a vendor's invoice once a person approves it in Slack.

The graph is a model node and a tool node. The `pay_vendor` tool asks Baton, which asks people
with the operator's flow (flows/vendor-payment-api.yaml: a finance approver, who may lower the
amount, for payments above 1,000), and stops the graph with `interrupt()` until they decide;
the graph resumes, and the tool runs once with the approved amount and reports its result.

    pip install 'baton-client[langgraph]' langchain-openai
    # (from a Baton checkout: pip install -e 'clients/python[langgraph]' langchain-openai)
    baton tokens create billing-bot --as service:billing-agent --flows vendor-payment-api
    export BATON_URL=https://baton.example.com BATON_TOKEN=bt_...
    export OPENAI_API_KEY=sk-...                   # and, for another OpenAI-compatible server:
    export OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3.1
    python langgraph_pay_vendor.py "Pay ACME's invoice INV-4471 for 20000"

The graph's state is kept by a checkpointer (here in memory; use a durable one such as
`SqliteSaver` so that another process can resume a graph still waiting for people, with
`BatonApprovals.resume(graph, config)`).
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

from baton_client import Baton
from baton_client.langgraph import BatonApprovals
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

FLOW = "vendor-payment-api"
INSTRUCTIONS = ("You are the billing agent. Pay the vendor invoices you are asked to pay with "
                "the pay_vendor tool, then say what was paid. If a payment is not approved, "
                "say who refused it and why, and do not try again.")


@dataclass
class Bank:
    """Stands in for your payment system: it records each payment it makes."""

    payments: list[dict[str, Any]] = field(default_factory=list)

    def pay(self, vendor: str, amount: float, invoice: str) -> dict[str, Any]:
        receipt = {"payment": f"PAY-{invoice}", "vendor": vendor, "amount": amount}
        self.payments.append(receipt)
        return receipt


def billing_graph(approvals: BatonApprovals, model: Any, bank: Bank, checkpointer: Any = None) -> Any:
    """The agent: a model bound to a pay_vendor tool that Baton approves, and the tool node."""

    @approvals.tool(flow=FLOW, summary=lambda vendor, amount, invoice: f"Pay {vendor} invoice {invoice}")
    @tool
    def pay_vendor(vendor: str, amount: float, invoice: str) -> str:
        """Pay a vendor's invoice from the company account.

        Args:
            vendor: The vendor to pay.
            amount: How much to pay.
            invoice: The invoice number.
        """
        receipt = bank.pay(vendor, amount, invoice)
        return f"Paid {receipt['amount']:g} to {vendor} for {invoice}: payment {receipt['payment']}"

    bound = model.bind_tools([pay_vendor])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke([SystemMessage(INSTRUCTIONS), *state["messages"]])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([pay_vendor]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=checkpointer or InMemorySaver())


def model_from_env() -> ChatOpenAI:
    """The model: OPENAI_MODEL on OPENAI_BASE_URL (default: OpenAI), via chat completions,
    which every OpenAI-compatible server speaks."""
    return ChatOpenAI(model=os.environ.get("OPENAI_MODEL", "gpt-4.1-mini"), use_responses_api=False)


def pay(task: str, bank: Bank, *, baton: Baton | None = None, model: Any = None,
        timeout: float = 3600.0, thread: str | None = None) -> str:
    """Give the agent `task`; Baton decides its payments. The agent's last words."""
    with baton or Baton() as client:
        approvals = BatonApprovals(client, timeout=timeout)
        graph = billing_graph(approvals, model or model_from_env(), bank)
        config = {"configurable": {"thread_id": thread or uuid.uuid4().hex}}
        state = approvals.invoke(graph, {"messages": [HumanMessage(task)]}, config)
        return str(state["messages"][-1].content)


if __name__ == "__main__":
    bank = Bank()
    print(pay(" ".join(sys.argv[1:]) or "Pay ACME's invoice INV-4471 for 20000", bank))
    print("payments made:", bank.payments)
