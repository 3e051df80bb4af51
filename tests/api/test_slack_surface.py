"""API-started runs appear in Slack like any other: the card says which service asked, for
which tool, with which arguments; what an agent sends is shown as text, never as markup."""

from __future__ import annotations

import json

import pytest
from baton_client import InvalidRequest

from tests.api.conftest import Api
from tests.bot.conftest import CAROL, PAYMENTS

HOSTILE = "<!channel> <@U0BOB0001> *urgent* <https://evil.example|click here> &amp;"


def test_the_run_card_says_who_asked_for_which_tool_with_which_arguments(api: Api) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    with api.client(token) as client:
        client.start("vendor-payment-api", {"vendor": HOSTILE, "amount": 20000,
                                            "invoice": "<!here>"},
                     summary=f"Pay the March invoice {HOSTILE}")
        gate = api.gate_message("R-1")
        card = api.baton.run_card("R-1")
        shown = json.dumps(card.blocks)
        assert "*Asked by* Billing agent (service)" in shown
        assert "tool `pay_vendor`" in shown and "API token `billing-bot`" in shown
        assert "amount: 20,000" in shown
        for message in (card, gate):
            raw = json.dumps({"text": message.text, "blocks": message.blocks})
            assert "<!channel>" not in raw and "<!here>" not in raw
            assert "<@U0BOB0001> *urgent*" not in raw  # Bob is pinged only as an approver
            assert "<https://evil.example" not in raw
        assert "&lt;!channel&gt;" in shown  # shown as text
        assert "Pay the March invoice" in shown

        api.baton.driver.click(user=CAROL, action_id="gate.decide.approve", channel=PAYMENTS,
                               ts=gate.ts)
        api.submit(CAROL, {"reason": "ok"})
        run = client.wait("R-1", timeout=30)
        client.report(run, result={"note": "<!channel> paid"})
        client.wait("R-1", timeout=30)
    api.baton.settle()
    thread = [json.dumps(m.blocks) for m in api.baton.thread(card)]
    assert any("waiting for Billing agent" in t and "`pay_vendor`" in t for t in thread)
    assert any("Billing agent ran `pay_vendor`" in t for t in thread)
    assert all("<!channel>" not in t for t in thread)


def test_arguments_too_large_are_refused(api: Api) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    with api.client(token) as client:
        with pytest.raises(InvalidRequest) as long_vendor:
            client.start("vendor-payment-api", {"vendor": "V" * 201, "amount": 2})
        assert long_vendor.value.errors[0]["field"] == "inputs.vendor"
        assert "at most 200 characters" in long_vendor.value.errors[0]["detail"]
        with pytest.raises(InvalidRequest) as nested:
            client.start("vendor-payment-api", {"vendor": {"a": [1, 2]}, "amount": 2})
        assert "expected text" in nested.value.errors[0]["detail"]
        with pytest.raises(InvalidRequest) as huge:
            client.start("vendor-payment-api", {"vendor": "x" * 1_100_000, "amount": 2})
        assert huge.value.status == 413
