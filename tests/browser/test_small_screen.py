"""The sandbox on a phone-sized window, its code chips, and a call log that tells the truth."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.conftest import BOB, Slack

# For each <code> on the page: its words that are drawn across two lines (a chip may wrap at
# a space, never inside a word such as `vendor-payment`).
BROKEN_WORDS = """() => {
  const broken = [];
  for (const code of document.querySelectorAll("code")) {
    if (!code.offsetParent) continue;
    const text = code.textContent;
    let at = 0;
    for (const word of text.split(" ")) {
      if (word.length > 1 && word.length <= 40) {
        const range = document.createRange();
        const node = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
        // find the text node and offset of this word
        let seen = 0, start = null, end = null;
        while (node.nextNode()) {
          const t = node.currentNode, len = t.textContent.length;
          if (start === null && at < seen + len) start = [t, at - seen];
          if (start !== null && at + word.length <= seen + len) { end = [t, at + word.length - seen]; break; }
          seen += len;
        }
        if (start && end) {
          range.setStart(...start); range.setEnd(...end);
          const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
          if (tops.size > 1) broken.push(word);
        }
      }
      at += word.length + 1;
    }
  }
  return broken;
}"""


def _open_small(s: Slack, user: str, place: str = "payments") -> None:
    """The page on a phone: its conversations list stays closed until asked for."""
    s.page.set_viewport_size({"width": 420, "height": 860})
    s.page.goto(f"{s.dev.url}?as={user}&in={place}")
    expect(s.page.locator("#title")).to_contain_text(place)


def _fits(page: Page) -> None:
    """Nothing on the page is wider than the window."""
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]  # type: ignore[index]


def test_a_phone_sized_window_can_run_decide_and_read_everything(slack: Callable[..., Slack]) -> None:
    s = slack()
    _open_small(s, "alice")
    _fits(s.page)
    # the conversations open from the menu, over the page, and close once one is picked
    expect(s.page.locator("#sidebar")).to_be_hidden()
    s.page.locator("#menu").click()
    expect(s.page.locator("#sidebar")).to_be_visible()
    s.page.locator('#sidebar [data-place="dm"]').click()
    expect(s.page.locator("#sidebar")).to_be_hidden()
    expect(s.page.locator("#title")).to_contain_text("baton")
    s.page.locator("#menu").click()
    s.page.locator("#sidebar .place", has_text="payments").click()

    s.type("/baton run vendor-payment vendor=ACME amount=20000")
    expect(s.message("R-1").locator(".replies")).to_be_visible()
    _fits(s.page)
    s.shot("small-run")

    s.be(BOB)
    s.open_thread("R-1")
    expect(s.page.locator("#main")).to_be_hidden()  # the thread takes the conversation's place
    gate = s.message("Approve vendor payment?", s.thread)
    approve = gate.locator('[data-action="gate.decide.approve"]')
    for button in gate.locator("button").all():  # every button within the screen's width
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 420
    _fits(s.page)
    assert s.page.evaluate(BROKEN_WORDS) == []
    s.shot("small-gate", docs="sandbox-7-phone.png")
    approve.click()
    expect(s.modal).to_be_visible()
    box = s.modal.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 420
    s.modal.locator("textarea").fill("Invoice matches the PO")
    s.modal.locator("[data-submit]").click()
    expect(gate).to_contain_text("Approved")
    s.page.locator("#thread-close").click()
    expect(s.page.locator("#main")).to_be_visible()
    s.type("/baton trace R-1")
    expect(s.messages.locator(".msg.ephemeral").last).to_contain_text("Gates and decisions")
    _fits(s.page)
    assert s.page.evaluate(BROKEN_WORDS) == []
    assert s.errors == []


def test_code_chips_wrap_between_words_in_any_width(slack: Callable[..., Slack]) -> None:
    s = slack()
    s.open("alice")
    for width in (1360, 760, 520, 420, 360):
        s.page.set_viewport_size({"width": width, "height": 800})
        s.type("/baton flows")
        expect(s.messages.locator(".msg.ephemeral").last).to_contain_text("/baton run vendor-payment")
        assert s.page.evaluate(BROKEN_WORDS) == [], width
        _fits(s.page)
    assert s.errors == []


def test_the_call_log_draws_a_successful_upload_as_a_success(slack: Callable[..., Slack]) -> None:
    s = slack()
    s.open("alice")
    s.type("/baton run vendor-payment vendor=ACME amount=500")
    expect(s.message("R-1").locator(".replies")).to_be_visible()
    s.type("/baton trace R-1 full")  # uploads the trace as two files
    calls = s.page.context.new_page()
    calls.set_viewport_size({"width": 420, "height": 800})
    calls.goto(f"{s.dev.url}_calls")
    uploads = calls.locator('#calls .call[data-method="upload_url"]')
    expect(uploads).to_have_count(2)
    for i in range(2):
        row = uploads.nth(i)
        expect(row).to_have_class("call ok")
        expect(row.locator(".outcome")).to_have_text("ok")
    calls.locator("#only-failed").check()
    expect(calls.locator('#calls .call[data-method="upload_url"]:not([hidden])')).to_have_count(0)
    assert calls.evaluate("document.documentElement.scrollWidth") <= 420
    logged = s.dev.slack.emulator.calls.calls_to("upload_url")
    assert [c.ok for c in logged] == [True, True] and all(c.status == 200 for c in logged)
    calls.screenshot(path=str(s.shot("calls").with_name(f"{s.name}-calls-420.png")))
    assert s.errors == []
