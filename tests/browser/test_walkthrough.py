"""A vendor payment in the sandbox page, as a newcomer would do it: start it as the
requester, approve it as a finance approver with a reason, read the trace."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import expect

from tests.browser.conftest import ALICE, BOB, Slack


def test_run_approve_with_a_reason_and_trace(slack: Callable[..., Slack], ledger: Callable) -> None:
    s = slack()
    s.open("alice")
    s.type("/baton run vendor-payment vendor=ACME amount=20000")

    # the command's own answer is ephemeral; the run card is posted in the channel
    expect(s.message("Starting Vendor payment")).to_contain_text("Only visible to you")
    card = s.message("R-1 · Vendor payment")
    expect(card).to_contain_text("Requested by @Alice Ng")
    expect(card).to_contain_text("amount: 20,000")
    expect(card.locator(".replies")).to_be_visible()  # the gate request is in its thread
    s.shot("run-started", docs="sandbox-1-run.png")

    # Bob, a finance approver, does not see Alice's ephemeral; he opens the thread
    s.be(BOB)
    expect(s.messages).not_to_contain_text("Starting Vendor payment")
    s.open_thread("R-1 · Vendor payment")
    gate = s.message("Approve vendor payment?", s.thread)
    expect(gate).to_contain_text("Can decide: @Bob Ortiz, @Carol Diaz")
    for agent in ("research", "risk", "compliance"):
        expect(gate).to_contain_text(f"{agent} ok")
    expect(gate.locator("button.bk-button.primary", has_text="Approve")).to_be_visible()
    expect(gate.locator(".bk-context", has_text="Boundaries")).to_contain_text("amount-limit")
    s.shot("gate", docs="sandbox-2-gate.png")

    gate.locator("button", has_text="Approve").first.click()
    expect(s.modal).to_contain_text("Approve R-1")
    reason = s.modal.locator("textarea")
    reason.fill("Invoice matches PO 4471")
    s.shot("reason", docs="sandbox-3-reason.png")
    # blank reasons: the page refuses an empty required input as Slack's client does, and
    # the bot refuses whitespace with response_action "errors", shown under the input
    reason.fill("")
    s.modal.locator("[data-submit]").click()
    expect(s.modal).to_contain_text("Please complete this required field.")
    reason.fill("   ")
    s.modal.locator("[data-submit]").click()
    expect(s.modal.locator(".error.from-app")).to_contain_text("Please say why")
    reason.fill("Invoice matches PO 4471")
    s.modal.locator("[data-submit]").click()
    expect(s.modal).to_have_count(0)

    # the request changes in place to who approved and why; the run finishes
    expect(gate).to_contain_text("Approved by @Bob Ortiz")
    expect(gate).to_contain_text("Invoice matches PO 4471")
    expect(gate.locator(".bk-button")).to_have_count(0)
    expect(s.message("R-1 Done", s.thread)).to_be_visible()
    expect(card).to_contain_text("Done")
    s.shot("approved", docs="sandbox-4-approved.png")
    assert len(ledger()) == 1

    s.page.locator("#thread-close").click()
    s.type("/baton trace R-1")
    trace = s.messages.locator(".msg.ephemeral").last
    expect(trace).to_contain_text("Only visible to you")
    expect(trace).to_contain_text("R-1")
    expect(trace).to_contain_text("Bob Ortiz")
    expect(trace).to_contain_text("Invoice matches PO 4471")
    trace.evaluate("message => message.scrollIntoView({block: 'start'})")  # its summary first
    s.shot("trace", docs="sandbox-5-trace.png")

    # Alice was never shown Bob's trace
    s.be(ALICE)
    expect(s.messages).not_to_contain_text("Invoice matches PO 4471")
    assert s.errors == []
