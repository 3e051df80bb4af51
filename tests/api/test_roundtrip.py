"""An agent asks through the API, a person decides in the emulated Slack thread, the agent
performs the approved action once and reports it: the user's path, end to end."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from baton_client import AsyncBaton, Conflict, Rejected, require_approval

from tests.api.conftest import Api
from tests.bot.conftest import BOB, CAROL, PAYMENTS
from tests.bot.processes import eventually


def _in_background(fn: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def go() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, outcome


def test_an_approver_edits_the_amount_and_the_agent_pays_exactly_that_once(api: Api) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    paid: list[tuple[str, float, str]] = []

    with api.client(token) as client:
        @require_approval(flow="vendor-payment-api", timeout=90, client=client,
                          key=lambda vendor, amount, invoice: invoice)
        def pay_vendor(vendor: str, amount: int, invoice: str) -> dict[str, Any]:
            paid.append((vendor, amount, invoice))
            return {"paid": amount, "reference": f"PAY-{invoice}"}

        thread, outcome = _in_background(pay_vendor, "ACME", 20000, "INV-4471")
        gate = api.gate_message("R-1")
        api.baton.driver.click(user=CAROL, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
        api.submit(CAROL, {"edit:amount": "18000", "reason": "Only the first milestone"})
        thread.join(90)
        assert outcome == {"value": {"paid": 18000, "reference": "PAY-INV-4471"}}
        assert paid == [("ACME", 18000, "INV-4471")]

        run = client.wait("R-1", timeout=30)  # the run finishes after the report
        assert run.state == "completed" and run.status == "succeeded"
        assert run.deciders == ["Carol Diaz"] and run.reason == "Only the first milestone"
        assert run.action["status"] == "done" and run.action["arguments"]["amount"] == 18000.0

        trace = client.trace("R-1")
        kinds = [e["kind"] for e in trace["entries"]]
        assert kinds[0] == "run_started" and "action_due" in kinds and kinds[-1] == "run_finished"
        started = trace["entries"][0]
        assert started["actor"] == "service:billing-agent"
        assert started["data"]["origin"]["token"] == "billing-bot"
        assert started["data"]["origin"]["tool"] == "pay_vendor"
        decision = next(e for e in trace["entries"] if e["kind"] == "decision")
        assert decision["actor"] == "carol"
        assert decision["data"]["edits"] == {"amount": {"from": 20000.0, "to": 18000.0}}
        done = next(e for e in trace["entries"] if e["kind"] == "action_done")
        assert done["actor"] == "service:billing-agent"
        assert done["data"]["result"] == {"paid": 18000, "reference": "PAY-INV-4471"}
        assert done["data"]["arguments"] == {"vendor": "ACME", "amount": 18000.0,
                                             "invoice": "INV-4471"}
        assert trace["verification"]["ok"]

        # The same call again (a retry after a crash, say): the same run, no second payment.
        assert pay_vendor("ACME", 20000, "INV-4471") == {"paid": 18000,
                                                          "reference": "PAY-INV-4471"}
        assert len(paid) == 1
        # A second report of the consumed approval is refused, and traced.
        with pytest.raises(Conflict, match="already reported"):
            client.report(run, approval=done["data"]["approval"],
                          arguments=done["data"]["arguments"], result={"paid": 18000})
        assert client.trace("R-1")["entries"][-1]["kind"] == "action_report_refused"


def test_a_rejection_reaches_the_agent_with_who_and_why(api: Api) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    with api.client(token) as client:
        @require_approval(flow="vendor-payment-api", timeout=90, client=client)
        def pay_vendor(vendor: str, amount: float, invoice: str | None = None) -> None:
            raise AssertionError("must not run")

        thread, outcome = _in_background(pay_vendor, "ACME", 20000)
        gate = api.gate_message("R-1")
        api.baton.driver.click(user=BOB, action_id="gate.decide.reject", channel=PAYMENTS,
                               ts=gate.ts)
        api.submit(BOB, {"reason": "No PO for this vendor"})
        thread.join(90)
        error = outcome["error"]
        assert isinstance(error, Rejected)
        assert error.decider == "Bob Ortiz" and error.reason == "No PO for this vendor"


def test_a_coroutine_function_is_approved_and_run_once(api: Api) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    paid: list[float] = []

    async def agent() -> Any:
        async with AsyncBaton(api.url, token.token) as client:
            @require_approval(flow="vendor-payment-api", timeout=90, client=client)
            async def pay_vendor(vendor: str, amount: float) -> str:
                paid.append(amount)
                await asyncio.sleep(0)
                return "paid"

            return await pay_vendor("ACME", 20000.5)

    thread, outcome = _in_background(asyncio.run, agent())
    api.gate_message("R-1")
    decided = api.cli("decide", "R-1", "approve", "--as", "bob", "--reason", "ok",
                      "--edit", "amount=19000.25")
    assert decided.returncode == 0, decided.stderr
    thread.join(90)
    assert outcome == {"value": "paid"} and paid == [19000.25]
    eventually(lambda: api.baton.engine.get_run("R-1").status == "succeeded", timeout=30)
