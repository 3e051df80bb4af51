"""Conflicts, escalations and the other ways to decide, in the sandbox page."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import expect

from tests.browser.conftest import BOB, CAROL, DAVE, FRANK, Slack
from tests.conftest import TEST_FLOWS
from tests.reliability.conftest import wait_until


def test_a_conflict_the_risk_lead_decides_with_a_reason(slack: Callable[..., Slack]) -> None:
    s = slack(TEST_FLOWS)
    s.open("alice")
    s.type("/baton run conflicts policy=ask")
    expect(s.message("R-1").locator(".replies")).to_be_visible()

    s.be(FRANK)
    s.open_thread("R-1")
    conflict = s.message("Agents disagree", s.thread)
    # the signals side by side, one "follow" button each, the risk lead pinged
    side_by_side = conflict.locator(".fields").last
    expect(side_by_side).to_contain_text("research: ok")
    expect(side_by_side).to_contain_text("risk: warn/medium")
    expect(side_by_side).to_contain_text("compliance: block/high")
    expect(conflict).to_contain_text("@Frank Li")
    expect(conflict.locator("button.bk-button")).to_have_count(3)
    s.shot("conflict")

    conflict.locator("button", has_text="risk").click()
    expect(s.modal).to_be_visible()
    s.modal.locator("textarea").fill("Domestic vendor: the rule does not apply")
    s.modal.locator("[data-submit]").click()
    expect(s.modal).to_have_count(0)
    expect(conflict).to_contain_text("Follow risk (warn)")
    expect(conflict).to_contain_text("Domestic vendor: the rule does not apply")
    expect(s.message("R-1 Done", s.thread)).to_be_visible()
    s.shot("followed")

    s.type("/baton trace R-1")
    trace = s.messages.locator(".msg.ephemeral").last
    expect(trace).to_contain_text("Domestic vendor: the rule does not apply")
    expect(trace).to_contain_text("Frank Li")
    s.shot("trace")
    assert s.errors == []


def test_an_escalation_reaches_the_next_level_by_dm_who_claims_and_approves(
        slack: Callable[..., Slack]) -> None:
    s = slack(TEST_FLOWS)
    s.open("alice")
    s.type("/baton run quick-escalation amount=750")
    card = s.message("R-1")
    expect(card.locator(".replies")).to_be_visible()

    # after the first level's 2 seconds, the finance lead is pinged in the thread and by DM
    s.be(DAVE)
    s.open_thread("R-1")
    expect(s.message("escalated to level 2", s.thread)).to_contain_text("@Dave Kim", timeout=15_000)
    dm_link = s.page.locator('#sidebar [data-place="dm"]')
    expect(dm_link).to_have_class("place unread")
    s.shot("escalated")
    s.go("dm")
    request = s.message("Approve the refund?")
    expect(request).to_contain_text("escalation level 2 of 2")
    s.shot("dm")

    # Reject asks for confirmation first (no reason modal follows it); Cancel sends nothing
    sent = len(s.dev.slack.emulator.page.sent.items())
    request.locator("button", has_text="Reject").click()
    dialog = s.page.locator("#confirm-root .confirm-dialog")
    expect(dialog).to_contain_text("This ends R-1")
    s.shot("confirm")
    dialog.locator("[data-deny]").click()
    expect(dialog).to_have_count(0)
    assert len(s.dev.slack.emulator.page.sent.items()) == sent

    request.locator("button", has_text="I'm on it").click()
    expect(s.messages.locator(".msg.ephemeral").last).to_be_visible()
    s.go("payments")
    s.open_thread("R-1")
    expect(s.message("is on it", s.thread)).to_contain_text("@Dave Kim")

    # the snooze menu is a static select: picking sends block_actions with selected_option
    s.go("dm")
    request = s.message("Approve the refund?")
    request.locator("select[data-action='gate.snooze']").select_option(label="Snooze 15m")
    expect(s.messages.locator(".msg.ephemeral")).to_have_count(2)
    # the bot may post its ephemeral answer before the page logs the request it answers
    def snoozes() -> list[dict]:
        return [item.payload for item in s.dev.slack.emulator.page.sent.items()
                if any(a.get("action_id") == "gate.snooze" for a in item.payload.get("actions") or [])]
    wait_until(snoozes, what="the snooze request in the page's log")
    assert snoozes()[-1]["actions"][0]["selected_option"]["value"].endswith(":900")

    request.locator("button", has_text="Approve").click()
    expect(request).to_contain_text("Approved by @Dave Kim")
    expect(request.locator(".bk-button")).to_have_count(0)
    s.go("payments")
    expect(s.message("R-1")).to_contain_text("Done")
    s.shot("approved")
    assert s.errors == []


def test_edit_and_approve_from_the_modal_after_the_app_home(slack: Callable[..., Slack],
                                                           ledger: Callable) -> None:
    s = slack()
    s.open("alice")
    s.type("/baton run vendor-payment vendor=ACME amount=20000")
    expect(s.message("R-1").locator(".replies")).to_be_visible()

    # Carol's App Home lists what waits for her
    s.be(CAROL)
    s.go("home")
    home = s.messages.locator(".home")
    expect(home).to_contain_text("Waiting for you (1)")
    expect(home).to_contain_text("R-1")
    s.shot("home")
    s.be(BOB)
    expect(s.messages.locator(".home")).to_contain_text("Waiting for you (1)")

    s.be(CAROL)
    s.go("payments")
    s.open_thread("R-1")
    gate = s.message("Approve vendor payment?", s.thread)
    gate.locator("button", has_text="Edit & approve").click()
    amount = s.modal.locator("input[type=number]")
    expect(amount).to_have_value("20000")
    s.be(BOB)  # a modal is its person's own
    expect(s.modal).to_have_count(0)
    s.be(CAROL)
    expect(amount).to_have_value("20000")
    amount.fill("9000")
    s.modal.locator("textarea").fill("Only the first milestone is due")
    s.shot("edit")
    s.modal.locator("[data-submit]").click()
    expect(s.modal).to_have_count(0)
    expect(gate).to_contain_text("amount → 9000")
    expect(s.message("R-1 Done", s.thread)).to_be_visible()
    assert [entry["amount"] for entry in ledger()] == [9000.0]
    assert s.errors == []


def test_the_edit_modal_shows_the_amount_exactly_and_unchanged_changes_nothing(
        slack: Callable[..., Slack], ledger: Callable) -> None:
    """12345.678 used to appear as 12345.7, so approving the modal as shown paid 12345.7."""
    s = slack()
    s.open("alice")
    s.type("/baton run vendor-payment vendor=ACME amount=12345.678")
    expect(s.message("R-1").locator(".replies")).to_be_visible()
    s.be(CAROL)
    s.open_thread("R-1")
    gate = s.message("Approve vendor payment?", s.thread)
    gate.locator("button", has_text="Edit & approve").click()
    amount = s.modal.locator("input[type=number]")
    expect(amount).to_have_value("12345.678")
    s.modal.locator("textarea").fill("The invoice is right as it is")
    s.modal.locator("[data-submit]").click()
    expect(s.modal).to_have_count(0)
    expect(s.message("R-1 Done", s.thread)).to_be_visible()
    assert [entry["amount"] for entry in ledger()] == [12345.678]
    assert s.errors == []


def test_skipping_ahead_shows_the_escalation_and_the_dm_says_why_it_came(slack: Callable[..., Slack]) -> None:
    s = slack()
    s.open("alice")
    s.type("/baton run vendor-payment vendor=ACME amount=20000")
    expect(s.message("R-1").locator(".replies")).to_be_visible()
    clock = s.page.locator("#clock-now")
    expect(clock).to_contain_text("Bot time")
    expect(clock).not_to_contain_text("(+")

    # finance-chain's first level waits 30 minutes: skip them instead of waiting
    s.page.select_option("#skip", "30m")
    expect(clock).to_contain_text("(+30m)")
    expect(s.page.locator("#toast")).to_contain_text("Skipped ahead 30m")
    s.be(DAVE)
    s.go("dm")
    request = s.message("Approve vendor payment?")
    why = request.locator(".bk-context", has_text="Why you:")
    expect(why).to_contain_text(
        "No decision within 30m at level 1, so it escalated to level 2 of 3: you are finance-lead.")
    expect(request.locator("button", has_text="I'm on it")).to_be_visible()
    s.shot("why-you", docs="sandbox-6-escalation-dm.png")

    s.go("payments")
    s.open_thread("R-1")
    expect(s.message("escalated to level 2", s.thread)).to_contain_text("@Dave Kim")
    assert s.errors == []
