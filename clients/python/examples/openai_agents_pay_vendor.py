"""An OpenAI Agents SDK agent pays a vendor's invoice once a person approves it in Slack.

The agent's `pay_vendor` tool needs approval; Baton decides it with the operator's flow
(flows/vendor-payment-api.yaml: a finance approver, who may lower the amount, for payments
above 1,000). The tool then runs once, with the approved amount, and Baton records the result.

    pip install 'baton-client[openai-agents]'      # or: pip install -e 'clients/python[openai-agents]'
    baton tokens create billing-bot --as service:billing-agent --flows vendor-payment-api
    export BATON_URL=https://baton.example.com BATON_TOKEN=bt_...
    export OPENAI_API_KEY=sk-...                   # and, for another OpenAI-compatible server:
    export OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3.1
    python openai_agents_pay_vendor.py "Pay ACME's invoice INV-4471 for 20000"

The agent talks to the model with chat completions, which every OpenAI-compatible server
speaks (Ollama, vLLM, llama.cpp); with OPENAI_BASE_URL set, the SDK's tracing export to
OpenAI is turned off.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from agents import Agent, OpenAIChatCompletionsModel, set_tracing_disabled
from baton_client import AsyncBaton
from baton_client.openai_agents import BatonApprovals
from openai import AsyncOpenAI

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


def billing_agent(approvals: BatonApprovals, model: Any, bank: Bank) -> Agent[Any]:
    """The agent, with a pay_vendor tool that Baton approves."""

    @approvals.tool(flow=FLOW, summary=lambda vendor, amount, invoice: f"Pay {vendor} invoice {invoice}")
    def pay_vendor(vendor: str, amount: float, invoice: str) -> dict[str, Any]:
        """Pay a vendor's invoice from the company account.

        Args:
            vendor: The vendor to pay.
            amount: How much to pay.
            invoice: The invoice number.
        """
        return bank.pay(vendor, amount, invoice)

    return Agent(name="Billing agent", instructions=INSTRUCTIONS, tools=[pay_vendor], model=model)


def model_from_env() -> OpenAIChatCompletionsModel:
    """The model: OPENAI_MODEL on OPENAI_BASE_URL (default: OpenAI), via chat completions."""
    if os.environ.get("OPENAI_BASE_URL"):
        set_tracing_disabled(True)  # the SDK's traces go to OpenAI, which this server is not
    return OpenAIChatCompletionsModel(model=os.environ.get("OPENAI_MODEL", "gpt-4.1-mini"),
                                      openai_client=AsyncOpenAI())


async def pay(task: str, bank: Bank, *, baton: AsyncBaton | None = None, model: Any = None,
              timeout: float = 3600.0) -> str:
    """Give the agent `task`; Baton decides its payments. The agent's last words."""
    async with baton or AsyncBaton() as client:
        approvals = BatonApprovals(client, timeout=timeout)
        agent = billing_agent(approvals, model or model_from_env(), bank)
        result = await approvals.run(agent, task)
        return str(result.final_output)


if __name__ == "__main__":
    bank = Bank()
    print(asyncio.run(pay(" ".join(sys.argv[1:]) or "Pay ACME's invoice INV-4471 for 20000", bank)))
    print("payments made:", bank.payments)
